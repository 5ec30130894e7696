// Company directory with live presence: the list loads once, then `presence.changed` and
// `device.*` events update it in place.
import { useEffect, useState } from 'preact/hooks';
import { asItems, type Schema } from '../api';
import { events } from '../events';
import { tOr, t } from '../i18n';
import { LoadState, Num, useApi } from '../ui';

type DirUser = Schema<'DirectoryEntry'>;

export function Directory() {
  const loaded = useApi<unknown>('/directory');
  const [users, setUsers] = useState<DirUser[]>([]);
  const [q, setQ] = useState('');
  useEffect(() => setUsers(asItems<DirUser>(loaded.data).items), [loaded.data]);
  useEffect(() => {
    const offP = events.on('presence.changed', (ev) => {
      const id = String(ev.data.user_id ?? ev.data.id ?? '');
      const presence = (ev.data.presence ? String(ev.data.presence) : '') as DirUser['presence'];
      if (!id || !presence || ev.data.removed) {
        loaded.reload();
        return;
      }
      setUsers((list) => list.map((u) => (String(u.id) === id ? { ...u, presence } : u)));
    });
    // Device changes can move someone between offline and available: re-read the list.
    const offOn = events.on('device.online', () => loaded.reload());
    const offOff = events.on('device.offline', () => loaded.reload());
    const offUsers = ['directory.user_added', 'directory.user_changed', 'directory.user_removed'].map((k) =>
      events.on(k, () => loaded.reload()),
    );
    return () => {
      offP();
      offOn();
      offOff();
      for (const off of offUsers) off();
    };
  }, [loaded.reload]);
  const needle = q.trim().toLowerCase();
  const shown = users.filter(
    (u) => !needle || u.display_name.toLowerCase().includes(needle) || String(u.extension).includes(needle),
  );
  return (
    <section class="page directory">
      <h1>{t('directory.title')}</h1>
      <input
        class="search"
        type="search"
        placeholder={t('directory.filter')}
        value={q}
        onInput={(e) => setQ((e.target as HTMLInputElement).value)}
      />
      <LoadState loaded={loaded} feature={t('nav.directory')} />
      {!loaded.loading && !loaded.error && shown.length === 0 && <p class="empty">{t('directory.empty')}</p>}
      <ul class="list people" data-testid="directory-list">
        {shown.map((u) => (
          <li key={u.id} data-testid="directory-user" data-presence={u.presence}>
            <span class={`presence p-${u.presence}`} title={tOr(`directory.presence.${u.presence}`, u.presence)} />
            <div class="row-main">
              <strong>{u.display_name || u.username}</strong>
              <span class="muted"> · {tOr(`directory.presence.${u.presence}`, u.presence)}</span>
            </div>
            <div class="nums">
              <Num value={u.extension} />
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
