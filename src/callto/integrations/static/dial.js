// The dial link page (/dial?to=<number>): shows the number as it will be dialed and places the call only
// when the signed-in user clicks. The session is the web app's (same localStorage keys); a cross-site
// page can neither read it nor make this page call: nothing is placed on load, only on the click.
(function () {
  'use strict';
  var TOKEN_KEY = 'callto.token';
  var EXPIRES_KEY = 'callto.expires_at';
  var TEXTS = {
    en: {
      signin: 'Sign in to callto to place this call.', username: 'Username', password: 'Password',
      otp: 'Second-factor code', signin_button: 'Sign in', confirm: 'Call this number on your main device?',
      call: 'Call', hangup: 'Hang up', missing: 'No number given: open this page as /dial?to=<number>.',
      dialing: 'Calling your device…', ringing: 'Ringing…', answered: 'Answered', ended: 'Call ended',
      failed: 'The call failed', not_allowed: 'Your outbound permission does not allow this number.',
      kinds: { extension: 'extension', national: 'national number', international: 'international number',
        emergency: 'emergency number' },
      errors: { 'invalid-credentials': 'Wrong username or password.', 'otp-required': 'Enter the code from your authenticator app.',
        'too-many-attempts': 'Too many attempts: wait a moment and try again.', 'invalid-number': 'This is not a number that can be dialed.',
        'no-main-device': 'You have no main device: choose one in the callto settings.',
        'device-offline': 'Your main device is not connected.', 'number-not-permitted': 'Your outbound permission does not allow this number.',
        'call-failed': 'The call could not be started.', network: 'The server cannot be reached.', other: 'Something went wrong.' }
    },
    it: {
      signin: 'Accedi a callto per fare questa chiamata.', username: 'Nome utente', password: 'Password',
      otp: 'Codice del secondo fattore', signin_button: 'Accedi', confirm: 'Chiamare questo numero dal tuo dispositivo principale?',
      call: 'Chiama', hangup: 'Riaggancia', missing: 'Nessun numero: apri questa pagina come /dial?to=<numero>.',
      dialing: 'Chiamata al tuo dispositivo…', ringing: 'Squilla…', answered: 'Risposta', ended: 'Chiamata terminata',
      failed: 'La chiamata non è riuscita', not_allowed: 'I tuoi permessi di chiamata non consentono questo numero.',
      kinds: { extension: 'interno', national: 'numero nazionale', international: 'numero internazionale',
        emergency: 'numero di emergenza' },
      errors: { 'invalid-credentials': 'Nome utente o password errati.', 'otp-required': "Inserisci il codice dell'app di autenticazione.",
        'too-many-attempts': 'Troppi tentativi: attendi un momento e riprova.', 'invalid-number': 'Questo non è un numero chiamabile.',
        'no-main-device': 'Non hai un dispositivo principale: sceglilo nelle impostazioni di callto.',
        'device-offline': 'Il tuo dispositivo principale non è connesso.', 'number-not-permitted': 'I tuoi permessi di chiamata non consentono questo numero.',
        'call-failed': 'Non è stato possibile avviare la chiamata.', network: 'Il server non è raggiungibile.', other: 'Qualcosa è andato storto.' }
    }
  };

  function language() {
    var saved = localStorage.getItem('callto.lang');
    if (saved === 'it' || saved === 'en') return saved;
    var langs = navigator.languages || [navigator.language];
    for (var i = 0; i < langs.length; i++) {
      var l = String(langs[i] || '').slice(0, 2).toLowerCase();
      if (l === 'it' || l === 'en') return l;
    }
    return 'en';
  }
  var lang = language();
  var T = TEXTS[lang];
  document.documentElement.lang = lang;

  var $ = function (id) { return document.getElementById(id); };
  var to = new URLSearchParams(location.search).get('to') || '';
  var callId = null;
  var poller = null;

  function translate() {
    document.querySelectorAll('[data-t]').forEach(function (el) { el.textContent = T[el.getAttribute('data-t')] || ''; });
  }
  function show(id) {
    ['signin', 'confirm', 'progress'].forEach(function (s) { $(s).hidden = s !== id; });
  }
  function fail(code, message) {
    var el = $('error');
    el.textContent = T.errors[code] || message || T.errors.other;
    el.hidden = false;
  }
  function clearError() { $('error').hidden = true; }

  function token() {
    var t = localStorage.getItem(TOKEN_KEY);
    var exp = localStorage.getItem(EXPIRES_KEY);
    if (!t || (exp && new Date(exp).getTime() <= Date.now())) return null;
    return t;
  }

  function api(method, path, body, extraHeaders) {
    var headers = { Accept: 'application/json' };
    var t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    Object.assign(headers, extraHeaders || {});
    return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit', cache: 'no-store' })
      .then(function (r) {
        return r.text().then(function (text) {
          var doc = null;
          try { doc = text ? JSON.parse(text) : null; } catch (e) { doc = null; }
          if (r.status === 401 && path.indexOf('/auth/login') < 0) {
            localStorage.removeItem(TOKEN_KEY);
            localStorage.removeItem(EXPIRES_KEY);
            signIn();
            throw { error: 'signed-out' };
          }
          if (!r.ok) throw doc || { error: 'other' };
          return doc;
        });
      }, function () { throw { error: 'network' }; });
  }

  function signIn() {
    show('signin');
  }

  function confirmNumber() {
    clearError();
    if (!to) { show(null); fail('missing', T.missing); return; }
    api('GET', '/api/v1/integrations/numbers/normalize?to=' + encodeURIComponent(to)).then(function (n) {
      $('confirm').querySelector('[data-testid=dial-number]').textContent = n.display || n.dialed;
      $('confirm').querySelector('[data-testid=dial-kind]').textContent = T.kinds[n.kind] || n.kind;
      show('confirm');
      $('call').disabled = !n.allowed;
      if (!n.allowed) fail('number-not-permitted');
    }, function (e) { if (e.error !== 'signed-out') { show(null); fail(e.error, e.message); } });
  }

  function key() {
    var b = crypto.getRandomValues(new Uint8Array(16));
    return Array.prototype.map.call(b, function (x) { return ('0' + x.toString(16)).slice(-2); }).join('');
  }

  function setState(state, reason) {
    var text = T[state] || state;
    $('progress').querySelector('[data-testid=dial-state]').textContent = reason && state === 'ended' ? text + ' (' + reason + ')' : text;
    $('progress').setAttribute('data-state', state);
    $('hangup').hidden = state === 'ended' || state === 'failed';
  }

  function follow() {
    if (!callId) return;
    api('GET', '/api/v1/calls/' + encodeURIComponent(callId)).then(function (c) {
      setState(c.state, c.reason);
      if (c.state === 'ended' || c.state === 'failed') { clearInterval(poller); poller = null; }
    }, function () { /* keep trying: a poll may fail while the network settles */ });
  }

  function placeCall() {
    clearError();
    $('call').disabled = true;
    api('POST', '/api/v1/calls', { to: to }, { 'Idempotency-Key': key() }).then(function (c) {
      callId = c.call_id;
      $('progress').querySelector('[data-testid=dial-progress-number]').textContent =
        $('confirm').querySelector('[data-testid=dial-number]').textContent;
      show('progress');
      setState(c.state, c.reason);
      poller = setInterval(follow, 1000);
    }, function (e) { $('call').disabled = false; if (e.error !== 'signed-out') fail(e.error, e.message); });
  }

  function hangUp() {
    if (!callId) return;
    api('DELETE', '/api/v1/calls/' + encodeURIComponent(callId)).then(function (c) { setState(c.state, c.reason); },
      function (e) { fail(e.error, e.message); });
  }

  function submitSignIn(ev) {
    ev.preventDefault();
    clearError();
    var f = ev.target;
    var body = { username: f.username.value, password: f.password.value };
    if (f.otp.value) body.otp = f.otp.value;
    api('POST', '/api/v1/auth/login', body).then(function (r) {
      localStorage.setItem(TOKEN_KEY, r.token);
      localStorage.setItem(EXPIRES_KEY, r.expires_at);
      f.password.value = '';
      confirmNumber();
    }, function (e) {
      if (e.error === 'otp-required') $('otp-row').hidden = false;
      fail(e.error, e.message);
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    translate();
    $('signin-form').addEventListener('submit', submitSignIn);
    $('call').addEventListener('click', placeCall);
    $('hangup').addEventListener('click', hangUp);
    if (token()) confirmNumber(); else signIn();
  });
})();
