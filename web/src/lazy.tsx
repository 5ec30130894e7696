// Pages only some users open (the admin screens) are loaded when first opened, so a plain user's first
// load downloads the app's own code and nothing of the admin screens.
import type { ComponentType, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { t } from './i18n';
import { ErrorBox } from './ui';

export function lazyPage<P extends object>(load: () => Promise<ComponentType<P>>): (props: P) => JSX.Element {
  let loaded: ComponentType<P> | null = null;
  return function LazyPage(props: P) {
    const [page, setPage] = useState<ComponentType<P> | null>(() => loaded);
    const [error, setError] = useState<unknown>(null);
    useEffect(() => {
      if (page !== null) return;
      load().then(
        (component) => {
          loaded = component;
          setPage(() => component);
        },
        (e: unknown) => setError(e),
      );
    }, []);
    if (error !== null) return <ErrorBox error={error} />;
    if (page === null) return <p class="muted">{t('common.loading')}</p>;
    const Page = page;
    return <Page {...props} />;
  };
}
