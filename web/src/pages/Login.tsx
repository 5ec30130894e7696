// Login screen: username/password, the second factor when the server asks for it, and the notice
// that explains why the user is here (session expired, logged out).
import { useState } from 'preact/hooks';
import { LangSwitch } from '../App';
import { ApiError } from '../api';
import { t } from '../i18n';
import { login, session } from '../session';
import { useStore } from '../store';
import { ErrorBox } from '../ui';

export function Login() {
  const notice = useStore(session).notice;
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [otp, setOtp] = useState('');
  const [needOtp, setNeedOtp] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password, needOtp ? otp.trim() : undefined);
    } catch (x) {
      if (x instanceof ApiError && x.error === 'otp-required') {
        setNeedOtp(true);
      } else {
        setError(x);
      }
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login-wrap">
      <form class="card login" onSubmit={submit} data-testid="login-form">
        <div class="login-head">
          <h1>{t('login.title')}</h1>
          <LangSwitch />
        </div>
        {notice && (
          <p class="notice" data-testid="login-notice">
            {t(notice)}
          </p>
        )}
        <label>
          {t('login.username')}
          <input
            name="username"
            autoComplete="username"
            required
            value={username}
            onInput={(e) => setUsername((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          {t('login.password')}
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </label>
        {needOtp && (
          <label>
            {t('login.otp')}
            <input
              name="otp"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9]{6,8}"
              required
              autoFocus
              value={otp}
              onInput={(e) => setOtp((e.target as HTMLInputElement).value)}
            />
            <small class="muted">{t('login.otpHelp')}</small>
          </label>
        )}
        <ErrorBox error={error} />
        <button class="btn primary" type="submit" disabled={busy} data-testid="login-submit">
          {t('login.submit')}
        </button>
      </form>
    </main>
  );
}
