// The application shell: login gate, navigation, connection status, click-to-call progress, the web
// phone panel and the customer card side panel around the current screen.
import { useEffect, useRef, useState } from 'preact/hooks';
import { events } from './events';
import { lang, t, type Lang } from './i18n';
import { chooseLanguage } from './settings';
import { CallProgressToast, PhonePanel } from './components/PhonePanel';
import { CardPage, CardPanel } from './pages/Card';
import { Diagnostics } from './pages/Diagnostics';
import { Directory } from './pages/Directory';
import { History } from './pages/History';
import { Integrations, ScreenPopNotice } from './pages/Integrations';
import { Login } from './pages/Login';
import { Phonebook } from './pages/Phonebook';
import { Settings } from './pages/Settings';
import { phone } from './phone';
import { logout, missed, refreshMe, session } from './session';
import { useStore } from './store';
import { Link, navigate, route } from './ui';
import { lazyPage } from './lazy';

// The admin screens load when first opened: a plain user's first load carries none of them.
const AdminUsers = lazyPage(() => import('./pages/Admin').then((m) => m.AdminUsers));
const AdminUser = lazyPage<{ id: string }>(() => import('./pages/Admin').then((m) => m.AdminUser));
const AdminDialplan = lazyPage(() => import('./pages/Admin').then((m) => m.AdminDialplan));
const AdminCardSources = lazyPage(() => import('./pages/AdminCardSources').then((m) => m.AdminCardSources));
const AdminClickToCall = lazyPage(() => import('./pages/AdminClickToCall').then((m) => m.AdminClickToCall));
const AdminHistory = lazyPage(() => import('./pages/AdminHistory').then((m) => m.AdminHistory));
const AdminIntegrations = lazyPage(() => import('./pages/AdminIntegrations').then((m) => m.AdminIntegrations));
const AdminPhones = lazyPage(() => import('./pages/AdminPhones').then((m) => m.AdminPhones));
const AdminTrunks = lazyPage(() => import('./pages/AdminTrunks').then((m) => m.AdminTrunks));

export function App() {
  const s = useStore(session);
  const l = useStore(lang);
  const path = useStore(route);
  useEffect(() => {
    if (!s.booting && !s.me && path !== '/login') {
      // Come back to the page that was asked for (a bookmark, a link) once logged in.
      if (path !== '/') sessionStorage.setItem('callto.next', path);
      navigate('/login');
    }
    if (s.me && (path === '/login' || path === '/')) {
      const next = sessionStorage.getItem('callto.next');
      sessionStorage.removeItem('callto.next');
      navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/phonebook');
    }
  }, [s.booting, s.me, path]);
  if (s.booting) return <div class="boot">{t('common.loading')}</div>;
  if (!s.me) return <Login key={l} />;
  return <Shell key={l} path={path} />;
}

function LangSwitch() {
  const l = useStore(lang);
  return (
    <label class="lang">
      <span class="sr-only">{t('lang.label')}</span>
      <select data-testid="lang" value={l} onChange={(e) => chooseLanguage((e.target as HTMLSelectElement).value as Lang)}>
        <option value="en">English</option>
        <option value="it">Italiano</option>
      </select>
    </label>
  );
}

export { LangSwitch };

function StatusLine() {
  const ev = useStore(events.status);
  const ph = useStore(phone.status);
  const [showBack, setShowBack] = useState(false);
  useEffect(() => {
    if (ev.reconnects > 0 || ph.reconnects > 0) {
      setShowBack(true);
      const timer = window.setTimeout(() => setShowBack(false), 8000);
      return () => window.clearTimeout(timer);
    }
    return undefined;
  }, [ev.reconnects, ph.reconnects]);
  return (
    <div class="statusline" data-testid="statusline">
      <span class={`pill ev-${ev.state}`} data-testid="events-status" data-state={ev.state}>
        <span class="dot" /> {t('status.events')}: {t(`status.events.${ev.state}`)}
      </span>
      {ph.reg !== 'off' && (
        <span class={`pill sip-${ph.reg}`} data-testid="sip-status" data-state={ph.reg}>
          <span class="dot" /> {t('status.phone')}: {t(`status.phone.${ph.reg}`)}
        </span>
      )}
      {showBack && (
        <span class="pill ok" data-testid="reconnected">
          {t('status.reconnected')}
        </span>
      )}
    </div>
  );
}

function Shell(props: { path: string }) {
  const me = useStore(session).me!;
  const nMissed = useStore(missed);
  const [menuOpen, setMenuOpen] = useState(false);
  const path = props.path;
  const firstPath = useRef(path);
  useEffect(() => {
    setMenuOpen(false);
    // Fresh device states on every screen change; also how a revoked or expired session is noticed.
    // (Not on the first screen: the session was just loaded.)
    if (path !== firstPath.current) void refreshMe().catch(() => undefined);
    firstPath.current = '';
  }, [path]);
  let page;
  const userMatch = /^\/admin\/users\/([^/]+)$/.exec(path);
  if (path.startsWith('/admin') && me.role !== 'admin') page = <p class="error">{t('err.forbidden')}</p>;
  else if (path === '/history') page = <History />;
  else if (path === '/directory') page = <Directory />;
  else if (path === '/card') page = <CardPage />;
  else if (path === '/settings') page = <Settings />;
  else if (path === '/diagnostics') page = <Diagnostics />;
  else if (path === '/integrations') page = <Integrations />;
  else if (path === '/admin/users' || path === '/admin') page = <AdminUsers />;
  else if (userMatch) page = <AdminUser id={decodeURIComponent(userMatch[1])} />;
  else if (path === '/admin/phones') page = <AdminPhones />;
  else if (path === '/admin/trunks') page = <AdminTrunks />;
  else if (path === '/admin/dialplan') page = <AdminDialplan />;
  else if (path === '/admin/click-to-call') page = <AdminClickToCall />;
  else if (path === '/admin/card-sources') page = <AdminCardSources />;
  else if (path === '/admin/calls') page = <AdminHistory />;
  else if (path === '/admin/integrations') page = <AdminIntegrations />;
  else page = <Phonebook />;
  return (
    <div class="shell">
      <header class="topbar">
        <button class="menu-btn" aria-label={t('nav.menu')} onClick={() => setMenuOpen(!menuOpen)}>
          ☰
        </button>
        <span class="brand">{t('app.name')}</span>
        <StatusLine />
        <span class="grow" />
        <span class="who" data-testid="who">
          {me.display_name || me.username}
          {me.extension ? ` · ${me.extension}` : ''}
        </span>
        <LangSwitch />
        <button class="link-btn" data-testid="logout" onClick={() => void logout()}>
          {t('nav.logout')}
        </button>
      </header>
      <div class="body">
        <nav class={`sidenav${menuOpen ? ' open' : ''}`} data-testid="nav">
          <Link href="/phonebook" testid="nav-phonebook">
            {t('nav.phonebook')}
          </Link>
          <Link href="/history" testid="nav-history">
            {t('nav.history')}
            {nMissed > 0 && <span class="badge">{nMissed}</span>}
          </Link>
          <Link href="/directory" testid="nav-directory">
            {t('nav.directory')}
          </Link>
          <Link href="/card" testid="nav-card">
            {t('nav.card')}
          </Link>
          <Link href="/settings" testid="nav-settings">
            {t('nav.settings')}
          </Link>
          <Link href="/diagnostics" testid="nav-diagnostics">
            {t('nav.diagnostics')}
          </Link>
          <Link href="/integrations" testid="nav-integrations">
            {t('nav.integrations')}
          </Link>
          {me.role === 'admin' && (
            <>
              <div class="navhead">{t('nav.admin')}</div>
              <Link href="/admin/users" testid="nav-admin-users">
                {t('nav.users')}
              </Link>
              <Link href="/admin/phones" testid="nav-admin-phones">
                {t('nav.phones')}
              </Link>
              <Link href="/admin/trunks" testid="nav-admin-trunks">
                {t('nav.trunks')}
              </Link>
              <Link href="/admin/dialplan" testid="nav-admin-dialplan">
                {t('nav.dialplan')}
              </Link>
              <Link href="/admin/click-to-call" testid="nav-admin-c2c">
                {t('nav.c2c')}
              </Link>
              <Link href="/admin/card-sources" testid="nav-admin-sources">
                {t('nav.sources')}
              </Link>
              <Link href="/admin/calls" testid="nav-admin-calls">
                {t('nav.allcalls')}
              </Link>
              <Link href="/admin/integrations" testid="nav-admin-integrations">
                {t('nav.adminIntegrations')}
              </Link>
            </>
          )}
        </nav>
        <main class="content">{page}</main>
        <CardPanel />
      </div>
      <CallProgressToast />
      <ScreenPopNotice />
      <PhonePanel />
    </div>
  );
}
