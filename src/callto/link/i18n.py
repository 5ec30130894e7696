"""Link's texts in English and Italian, and which language is shown.

The language follows the operating system (``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG``, else Qt's
system locale) unless the user picked one in the settings (``Settings.language``: ``auto``, ``en``,
``it``). Keys shared with the web CTI (``login.*``, ``settings.*``, ``device.*``, ``call.*``) carry the
web's very wording (``web/src/i18n.ts``); a test compares them, and fails when a key is missing in
either language here. Errors carry a text id and parameters (``details['text']``/``details['params']``)
so they are worded in the language shown, not the one the error was raised in.
"""

from __future__ import annotations

import os
from typing import Any

LANGUAGES = ("en", "it")

EN: dict[str, str] = {
    # shared with the web CTI: same key, same wording
    "login.username": "Username",
    "login.password": "Password",
    "login.otp": "Authentication code",
    "login.submit": "Sign in",
    "login.expired": "Your session has expired. Please sign in again.",
    "login.otpHelp": "Enter the 6-digit code from your authenticator app.",
    "err.invalid-credentials": "Wrong username or password.",
    "err.invalid-otp": "That authentication code is not valid.",
    "link.tooManyAttempts": "Too many attempts. Wait a minute and try again.",
    "err.idempotency-in-progress": "This call is still being placed.",
    "link.serverRetrying": "The server cannot reach its database right now. You are still signed in; "
    "Link retries by itself.",
    "link.notEnabled": "Phone Link is not enabled for your user. Ask your administrator to enable Phone Link "
    "for your user.",
    "settings.title": "Settings",
    "settings.mainDevice": "Main device",
    "settings.mainDeviceHelp": "Clicked numbers ring this device.",
    "settings.ringtone": "Ring aloud for incoming calls",
    "settings.audio": "Audio",
    "settings.input": "Microphone",
    "settings.output": "Speaker",
    "settings.account": "Account",
    "lang.label": "Language",
    "device.webphone": "Web phone",
    "device.link": "callto Link",
    "device.deskphone": "Desk phone",
    "device.mobile": "Mobile",
    "device.online": "online",
    "device.offline": "offline",
    "call.ended": "Call ended",
    "call.deskphoneHint": "Pick up your phone when it rings.",
    "common.close": "Close",
    # Link only
    "link.server": "Server",
    "link.serverPlaceholder": "pbx.example.com or 192.168.1.10",
    "link.otpPlaceholder": "6-digit code",
    "link.notSignedIn": "Not signed in.",
    "link.signingIn": "Signing in...",
    "link.enterCredentials": "Enter your username and password.",
    "link.signedIn": "Signed in as {name} ({username}), extension {extension}.",
    "link.connected": "Signed in as {name} ({username}); connected.",
    "link.certPrompt": "The server's certificate is not signed by an authority this computer trusts. "
    "Trust it only if your administrator confirms this SHA-256 fingerprint:",
    "link.certNotTrusted": "The server's certificate is not trusted yet: see below.",
    "link.trust": "Trust this certificate",
    "link.trusted": "Trusted certificate {fingerprint}... Signing in again.",
    "link.mainDeviceBox": "Main device: where your calls ring",
    "link.thisComputer": "This computer",
    "link.registerHandler": "Make Link the handler for tel: and callto: links",
    "link.autostart": "Start callto Link when I log in",
    "link.shortcut": "Call selected number",
    "link.shortcutHelp": "Click, then press the key combination that calls the selected number.",
    "link.shortcutDefault": "Default ({shortcut})",
    "link.shortcutStays": "{problem} {shortcut} stays.",
    "link.calls": "Incoming calls",
    "link.popup": "Show a pop-up for incoming calls",
    "link.callsHelp": "Answer on a desk phone? Turn these off: they are your profile's, the same as in the web "
    "CTI. The ring tone plays in the phone window (Phone); its microphone and the calls' speaker are that "
    "window's own settings.",
    "link.ringDeviceHelp": "A loudspeaker for the ring tone while calls use a headset.",
    "link.ringDeviceMissing": "{name} (not connected)",
    "settings.ringOutput": "Ring tone plays on",
    "settings.sameAsCall": "The same speaker as calls",
    "link.languageAuto": "Same as the system",
    "link.test": "Test connection",
    "link.openPhone": "Open phone",
    "link.settingsTitle": "callto Link - Settings",
    "link.testTitle": "callto Link - Test connection",
    "link.phoneTitle": "callto Link - Phone",
    "link.fix": "Fix: {fix}",
    # where the session is kept when the keyring fails
    "link.keyringFailed": "Signed in, but this computer has no working password store (keyring) to keep "
    "your session in. Choose where Link keeps it:",
    "link.keepInMemory": "Only while Link runs (sign in again next time)",
    "link.keepInFile": "In a file only you can read",
    "link.keptInMemory": "Signed in. Your session is kept only while Link runs.",
    "link.keptInFile": "Signed in. Your session is kept in {path}, readable only by you.",
    "link.fileFailed": "The session could not be written to {path}: {problem}. It is kept only while Link runs.",
    # Test connection
    "check.phoneLan": 'Desk phone reachable from this computer',
    "check.phoneLanNoAnswer": 'no answer',
    "check.phoneLanFail": 'This computer cannot reach the desk phone at {address}:{port} ({reason}).',
    "check.phoneLanFailFix": "Connect to the phone's LAN or VPN for instant dialing; meanwhile the server rings "
    "the phone itself, which works from anywhere.",
    "check.phoneLanOk": "This computer reaches the desk phone at {address}:{port}: Link can relay dial requests to it.",
    "check.server": 'Server reachable',
    "check.serverOk": 'The server at {url} answers.',
    "check.tls": 'TLS certificate',
    "check.tlsTrustFix": "Click 'Trust this certificate' if your administrator confirms the fingerprint {fingerprint}.",
    "check.tlsAskFix": 'Ask your administrator for a valid certificate.',
    "check.skipUntrusted": "Skipped: the server's certificate is not trusted yet.",
    "check.serverFix": 'Check the server address, your network and VPN; ask your administrator if the server is up.',
    "check.skipUnreachable": 'Skipped: the server is not reachable.',
    "check.credentials": 'Credentials',
    "check.enterCredentials": 'Enter username and password.',
    "check.signedInAs": 'Signed in as {username}.',
    "check.signInAgain": 'Sign in again in Settings.',
    "check.tryAgain": 'Try again.',
    "check.skipNotSignedIn": 'Skipped: not signed in.',
    "check.linkEnabled": 'Phone Link enabled',
    "check.linkEnabledFix": 'Ask your administrator to enable Phone Link for your user.',
    "check.linkEnabledOk": 'Phone Link is enabled for your user.',
    "check.events": 'Event stream',
    "check.eventsOk": 'Connected: Link receives calls and commands live.',
    "check.eventsFail": 'The event stream is {state}.',
    "check.eventsFix": 'A firewall or proxy may block WebSockets to the server; ask your administrator.',
    "check.noPhoneAddress": "The server has not told Link the desk phone's address yet (is it registered?).",
    "check.noPhoneAddressFix": 'Check that the phone is powered on and registered, then test again.',
    "check.notDeskphone": 'Not needed: main device is not a desk phone.',
    "check.mainDevice": 'Main device online',
    "check.serverView": "Server's checks for you",
    "check.tlsPlain": 'The connection is not encrypted (http://).',
    "check.tlsPlainFix": 'Use https:// unless the server is on this computer.',
    "check.tlsPinned": 'Explicitly trusted certificate, fingerprint {fingerprint}.',
    "check.tlsValid": 'Valid certificate, fingerprint {fingerprint}.',
    "check.unknown": 'unknown',
    "check.noDiagnostics": 'This server does not offer diagnostics.',
    "check.allPass": 'All {count} checks pass.',
    "check.needAttention": '{bad} of {count} need attention; first: {message}.',
    "check.noMainDevice": 'No main device is chosen.',
    "check.chooseMainDevice": 'Choose your main device in Settings.',
    "check.mainOffline": '{device}: calls cannot reach it now.',
    "check.fixWebphone": 'Open the web CTI in your browser and keep it signed in.',
    "check.fixLink": "Open Link's phone window (tray menu > Phone) so this computer can take calls.",
    "check.fixDeskphone": 'Check that the desk phone is powered on, connected and registered.',
    "check.chooseOther": 'Choose another main device in Settings.',
    # the global shortcut
    "hotkey.howElse": "Use the tray menu's 'Dial selection / clipboard' instead.",
    "hotkey.wayland": "This desktop runs Wayland without X11, and Wayland does not let programs see keys "
    "pressed in other programs, so no global shortcut is possible.",
    "hotkey.noDisplay": "There is no X11 display here (DISPLAY is not set).",
    "hotkey.noPynput": "Global shortcuts need the pynput package (pip install 'callto[link]').",
    "hotkey.broken": "Global shortcuts do not work here: {problem}.",
    "hotkey.cannotWatch": "Cannot watch for {shortcut}: {problem}.",
    "hotkey.listenerFailed": "Cannot watch for {shortcut}: the keyboard listener did not start.",
    "hotkey.active": "Press {shortcut} in any program to call the selected number (or the copied one).",
    "hotkey.once": "{shortcut} works once Link runs in the tray.",
    # tray and notifications
    "tray.dialSelection": "Dial selection / clipboard",
    "tray.moveHere": "Take my call on this computer",
    "tray.moveToMain": "Move my call to my main device",
    "notify.moved": "Call moved",
    "notify.movedText": "The call is now on {device}.",
    "notify.moveFailed": "The call was not moved",
    "notify.moveStays": "The call stays where it was: {reason}",
    "notify.noLinkDevice": "You have no Link device: ask your administrator to enable Phone Link.",
    "notify.mainIsLink": "Your main device is this computer: choose your desk phone as main device in Settings.",
    "move.no-answer": "the device did not answer.",
    "move.busy": "the device is busy.",
    "move.declined": "the call was declined on the device.",
    "move.unreachable": "the device could not be reached.",
    "move.peer-refused": "the other party's phone refused the change.",
    "move.media-failed": "the media relay could not join the two devices.",
    "move.call-ended": "the call ended while the device rang.",
    "move.failed": "the device did not take the call.",
    "err.no-live-call": "You have no answered call to move.",
    "err.same-device": "The call is already on that device.",
    "err.device-not-registered": "That device is not registered now.",
    "err.move-running": "The call is already being moved or transferred.",
    "err.device-not-owned": "That device is not yours.",
    "err.switch-unavailable": "The phone system is not running.",
    "tray.phone": "Phone",
    "tray.settings": "Settings...",
    "tray.test": "Test connection...",
    "tray.quit": "Quit",
    "tray.notConnected": "not connected",
    "tray.connected": "connected",
    "notify.incoming": "Incoming call",
    "notify.incomingText": "{peer} is calling.",
    "notify.screenPopFailed": "Cannot open the screen pop",
    "notify.prefsNotSaved": "The choice was not saved",
    "notify.screenPopFailedText": "The system could not open {url} in the browser.",
    "notify.unknownCaller": "Unknown caller",
    "notify.ringing": "Ringing",
    "notify.ringingText": "{number} is ringing.",
    "notify.connected": "Connected",
    "notify.connectedText": "In call with {number}.",
    "notify.missed": "Missed call",
    "notify.missedText": "Missed call from {peer}.",
    "notify.endedText": "The call ended: {reason}.",
    "notify.calling": "Calling {number}",
    "notify.pickUp": "Pick up {device}.",
    "notify.yourMainDevice": "your main device",
    "notify.callFailed": "Call to {number} failed",
    "notify.cannotCall": "Cannot call",
    "notify.signInToCall": "Sign in to call",
    "notify.willCall": "{number} will be called once you are signed in.",
    "notify.noNumber": "No number to call",
    "notify.mainDeviceSet": "Calls now ring on {device}.",
    "notify.mainDeviceNotSet": "Main device not changed",
    "notify.signedOut": "Signed out",
    "notify.signedOutText": "Your session has ended. Sign in again in Settings.",
    "notify.noWebEngine": "Link's built-in phone needs Qt WebEngine (pip install PySide6-Addons[webengine]).",
    "notify.openedInBrowser": "The web phone opened in your browser instead.",
    # connection problems, each with its likely fix
    "net.notHttps": "The server at {host}:{port} does not speak HTTPS on that port. If it serves plain "
    "HTTP there, type http://{host}:{port}; otherwise check the port number.",
    "net.tryHttps": "The server at {host}:{port} closed the connection without answering. If it uses "
    "HTTPS, type https://{host}:{port}; otherwise check the port number.",
    "net.refused": "Nothing answers at {host}:{port}. Check the port number (the one in callto's web "
    "address) and that the server is running.",
    "net.unknownHost": "The name {host} is not known. Check the spelling of the server address, or your "
    "network or VPN.",
    "net.timeout": "The server at {host}:{port} did not answer in time. Check the address, your network or VPN.",
    "net.unreachable": "Cannot reach the server at {host}:{port} ({problem}). Check the address, your "
    "network or VPN.",
    "net.notCallto": "The server at {host}:{port} answered with something that is not callto (HTTP "
    "{status}). Is the address right?",
}

IT: dict[str, str] = {
    "login.username": "Nome utente",
    "login.password": "Password",
    "login.otp": "Codice di autenticazione",
    "login.submit": "Accedi",
    "login.expired": "La sessione è scaduta. Accedi di nuovo.",
    "login.otpHelp": "Inserisci il codice a 6 cifre dell'app di autenticazione.",
    "err.invalid-credentials": "Nome utente o password errati.",
    "err.invalid-otp": "Il codice di autenticazione non è valido.",
    "link.tooManyAttempts": "Troppi tentativi. Attendi un minuto e riprova.",
    "err.idempotency-in-progress": "Questa chiamata è ancora in corso di avvio.",
    "link.serverRetrying": "Il server non raggiunge il suo database in questo momento. Sei ancora connesso; "
    "Link riprova da solo.",
    "link.notEnabled": "Phone Link non è abilitato per il tuo utente. Chiedi al tuo amministratore di "
    "abilitare Phone Link per il tuo utente.",
    "settings.title": "Impostazioni",
    "settings.mainDevice": "Dispositivo principale",
    "settings.mainDeviceHelp": "I numeri cliccati fanno squillare questo dispositivo.",
    "settings.ringtone": "Suoneria per le chiamate in arrivo",
    "settings.audio": "Audio",
    "settings.input": "Microfono",
    "settings.output": "Altoparlante",
    "settings.account": "Account",
    "lang.label": "Lingua",
    "device.webphone": "Telefono web",
    "device.link": "callto Link",
    "device.deskphone": "Telefono fisso",
    "device.mobile": "Cellulare",
    "device.online": "connesso",
    "device.offline": "non connesso",
    "call.ended": "Chiamata terminata",
    "call.deskphoneHint": "Alza la cornetta quando il telefono squilla.",
    "common.close": "Chiudi",
    "link.server": "Server",
    "link.serverPlaceholder": "pbx.esempio.it oppure 192.168.1.10",
    "link.otpPlaceholder": "codice a 6 cifre",
    "link.notSignedIn": "Accesso non effettuato.",
    "link.signingIn": "Accesso in corso...",
    "link.enterCredentials": "Inserisci nome utente e password.",
    "link.signedIn": "Accesso effettuato come {name} ({username}), interno {extension}.",
    "link.connected": "Accesso effettuato come {name} ({username}); connesso.",
    "link.certPrompt": "Il certificato del server non è firmato da un'autorità di cui questo computer si "
    "fida. Fidati solo se il tuo amministratore conferma questa impronta SHA-256:",
    "link.certNotTrusted": "Il certificato del server non è ancora considerato affidabile: vedi sotto.",
    "link.trust": "Considera affidabile questo certificato",
    "link.trusted": "Certificato {fingerprint}... considerato affidabile. Nuovo accesso in corso.",
    "link.mainDeviceBox": "Dispositivo principale: dove squillano le tue chiamate",
    "link.thisComputer": "Questo computer",
    "link.registerHandler": "Apri con Link i link tel: e callto:",
    "link.autostart": "Avvia callto Link quando accedo al computer",
    "link.shortcut": "Chiama il numero selezionato",
    "link.shortcutHelp": "Fai clic, poi premi la combinazione di tasti che chiama il numero selezionato.",
    "link.shortcutDefault": "Predefinita ({shortcut})",
    "link.shortcutStays": "{problem} Resta {shortcut}.",
    "link.calls": "Chiamate in arrivo",
    "link.popup": "Mostra un avviso per le chiamate in arrivo",
    "link.callsHelp": "Rispondi dal telefono fisso? Disattivali: sono scelte del tuo profilo, come nel CTI "
    "web. La suoneria suona nella finestra del telefono (Telefono); il suo microfono e l'altoparlante delle "
    "chiamate sono impostazioni di quella finestra.",
    "link.ringDeviceHelp": "Un altoparlante per la suoneria mentre le chiamate usano le cuffie.",
    "link.ringDeviceMissing": "{name} (non collegato)",
    "settings.ringOutput": "La suoneria suona su",
    "settings.sameAsCall": "Lo stesso altoparlante delle chiamate",
    "link.languageAuto": "Come il sistema",
    "link.test": "Verifica connessione",
    "link.openPhone": "Apri il telefono",
    "link.settingsTitle": "callto Link - Impostazioni",
    "link.testTitle": "callto Link - Verifica connessione",
    "link.phoneTitle": "callto Link - Telefono",
    "link.fix": "Soluzione: {fix}",
    "link.keyringFailed": "Accesso effettuato, ma questo computer non ha un archivio delle password "
    "(portachiavi) funzionante dove conservare la sessione. Scegli dove Link la conserva:",
    "link.keepInMemory": "Solo finché Link è aperto (al prossimo avvio accedi di nuovo)",
    "link.keepInFile": "In un file che solo tu puoi leggere",
    "link.keptInMemory": "Accesso effettuato. La sessione è conservata solo finché Link è aperto.",
    "link.keptInFile": "Accesso effettuato. La sessione è conservata in {path}, leggibile solo da te.",
    "link.fileFailed": "Impossibile scrivere la sessione in {path}: {problem}. È conservata solo finché "
    "Link è aperto.",
    # Test connection
    "check.phoneLan": 'Telefono fisso raggiungibile da questo computer',
    "check.phoneLanNoAnswer": 'nessuna risposta',
    "check.phoneLanFail": 'Questo computer non raggiunge il telefono fisso su {address}:{port} ({reason}).',
    "check.phoneLanFailFix": "Collegati alla LAN o alla VPN del telefono per chiamare subito; nel frattempo è il "
    "server a far squillare il telefono, e funziona da ovunque.",
    "check.phoneLanOk": "Questo computer raggiunge il telefono fisso su {address}:{port}: Link può inoltrargli le "
    "chiamate.",
    "check.server": 'Server raggiungibile',
    "check.serverOk": 'Il server {url} risponde.',
    "check.tls": 'Certificato TLS',
    "check.tlsTrustFix": "Fai clic su 'Considera affidabile questo certificato' se il tuo amministratore conferma "
    "l'impronta {fingerprint}.",
    "check.tlsAskFix": 'Chiedi al tuo amministratore un certificato valido.',
    "check.skipUntrusted": 'Saltato: il certificato del server non è ancora considerato affidabile.',
    "check.serverFix": "Controlla l'indirizzo del server, la rete e la VPN; chiedi al tuo amministratore se il "
    "server è acceso.",
    "check.skipUnreachable": 'Saltato: il server non è raggiungibile.',
    "check.credentials": 'Credenziali',
    "check.enterCredentials": 'Inserisci nome utente e password.',
    "check.signedInAs": 'Accesso effettuato come {username}.',
    "check.signInAgain": 'Accedi di nuovo dalle Impostazioni.',
    "check.tryAgain": 'Riprova.',
    "check.skipNotSignedIn": 'Saltato: accesso non effettuato.',
    "check.linkEnabled": 'Phone Link abilitato',
    "check.linkEnabledFix": 'Chiedi al tuo amministratore di abilitare Phone Link per il tuo utente.',
    "check.linkEnabledOk": 'Phone Link è abilitato per il tuo utente.',
    "check.events": 'Flusso degli eventi',
    "check.eventsOk": 'Connesso: Link riceve chiamate e comandi in tempo reale.',
    "check.eventsFail": 'Il flusso degli eventi è {state}.',
    "check.eventsFix": "Un firewall o un proxy potrebbe bloccare i WebSocket verso il server; chiedi al tuo "
    "amministratore.",
    "check.noPhoneAddress": "Il server non ha ancora comunicato a Link l'indirizzo del telefono fisso (è registrato?).",
    "check.noPhoneAddressFix": 'Controlla che il telefono sia acceso e registrato, poi ripeti la verifica.',
    "check.notDeskphone": 'Non serve: il dispositivo principale non è un telefono fisso.',
    "check.mainDevice": 'Dispositivo principale connesso',
    "check.serverView": 'Verifiche del server per te',
    "check.tlsPlain": 'La connessione non è cifrata (http://).',
    "check.tlsPlainFix": 'Usa https:// a meno che il server non sia su questo computer.',
    "check.tlsPinned": 'Certificato considerato affidabile esplicitamente, impronta {fingerprint}.',
    "check.tlsValid": 'Certificato valido, impronta {fingerprint}.',
    "check.unknown": 'sconosciuta',
    "check.noDiagnostics": 'Questo server non offre la diagnostica.',
    "check.allPass": 'Tutte le {count} verifiche sono superate.',
    "check.needAttention": '{bad} su {count} richiedono attenzione; la prima: {message}.',
    "check.noMainDevice": 'Nessun dispositivo principale scelto.',
    "check.chooseMainDevice": 'Scegli il dispositivo principale nelle Impostazioni.',
    "check.mainOffline": '{device}: ora le chiamate non lo raggiungono.',
    "check.fixWebphone": 'Apri il CTI web nel browser e resta connesso.',
    "check.fixLink": "Apri la finestra del telefono di Link (menu nell'area di notifica > Telefono) perché questo "
    "computer possa ricevere chiamate.",
    "check.fixDeskphone": 'Controlla che il telefono fisso sia acceso, collegato e registrato.',
    "check.chooseOther": 'Scegli un altro dispositivo principale nelle Impostazioni.',
    "hotkey.howElse": "Usa invece la voce 'Chiama la selezione / gli appunti' del menu nell'area di notifica.",
    "hotkey.wayland": "Questo desktop usa Wayland senza X11, e Wayland non lascia vedere ai programmi i "
    "tasti premuti in altri programmi: nessuna scorciatoia globale è possibile.",
    "hotkey.noDisplay": "Qui non c'è un display X11 (DISPLAY non è impostato).",
    "hotkey.noPynput": "Le scorciatoie globali richiedono il pacchetto pynput (pip install 'callto[link]').",
    "hotkey.broken": "Le scorciatoie globali qui non funzionano: {problem}.",
    "hotkey.cannotWatch": "Impossibile ascoltare {shortcut}: {problem}.",
    "hotkey.listenerFailed": "Impossibile ascoltare {shortcut}: l'ascolto della tastiera non è partito.",
    "hotkey.active": "Premi {shortcut} in qualsiasi programma per chiamare il numero selezionato (o quello "
    "copiato).",
    "hotkey.once": "{shortcut} funziona quando Link è attivo nell'area di notifica.",
    "tray.dialSelection": "Chiama la selezione / gli appunti",
    "tray.moveHere": "Prendi la mia chiamata su questo computer",
    "tray.moveToMain": "Sposta la mia chiamata sul dispositivo principale",
    "notify.moved": "Chiamata spostata",
    "notify.movedText": "Ora la chiamata è su {device}.",
    "notify.moveFailed": "La chiamata non è stata spostata",
    "notify.moveStays": "La chiamata resta dov'era: {reason}",
    "notify.noLinkDevice": "Non hai un dispositivo Link: chiedi all'amministratore di abilitare Phone Link.",
    "notify.mainIsLink": "Il tuo dispositivo principale è questo computer: scegli il telefono fisso come "
    "principale nelle Impostazioni.",
    "move.no-answer": "il dispositivo non ha risposto.",
    "move.busy": "il dispositivo è occupato.",
    "move.declined": "la chiamata è stata rifiutata sul dispositivo.",
    "move.unreachable": "il dispositivo non è raggiungibile.",
    "move.peer-refused": "il telefono dell'altra persona ha rifiutato il cambio.",
    "move.media-failed": "il relay dei media non ha potuto unire i due dispositivi.",
    "move.call-ended": "la chiamata è finita mentre il dispositivo squillava.",
    "move.failed": "il dispositivo non ha preso la chiamata.",
    "err.no-live-call": "Non hai una chiamata in corso da spostare.",
    "err.same-device": "La chiamata è già su quel dispositivo.",
    "err.device-not-registered": "Quel dispositivo non è registrato ora.",
    "err.move-running": "La chiamata è già in corso di spostamento o trasferimento.",
    "err.device-not-owned": "Quel dispositivo non è tuo.",
    "err.switch-unavailable": "Il centralino non è attivo.",
    "tray.phone": "Telefono",
    "tray.settings": "Impostazioni...",
    "tray.test": "Verifica connessione...",
    "tray.quit": "Esci",
    "tray.notConnected": "non connesso",
    "tray.connected": "connesso",
    "notify.incoming": "Chiamata in arrivo",
    "notify.incomingText": "Ti sta chiamando {peer}.",
    "notify.screenPopFailed": "Impossibile aprire la scheda del chiamante",
    "notify.prefsNotSaved": "La scelta non è stata salvata",
    "notify.screenPopFailedText": "Il sistema non è riuscito ad aprire {url} nel browser.",
    "notify.unknownCaller": "Chiamante sconosciuto",
    "notify.ringing": "Squilla",
    "notify.ringingText": "Squilla {number}.",
    "notify.connected": "In linea",
    "notify.connectedText": "In linea con {number}.",
    "notify.missed": "Chiamata persa",
    "notify.missedText": "Chiamata persa da {peer}.",
    "notify.endedText": "La chiamata è terminata: {reason}.",
    "notify.calling": "Chiamata a {number}",
    "notify.pickUp": "Rispondi su {device}.",
    "notify.yourMainDevice": "il tuo dispositivo principale",
    "notify.callFailed": "Chiamata a {number} non riuscita",
    "notify.cannotCall": "Impossibile chiamare",
    "notify.signInToCall": "Accedi per chiamare",
    "notify.willCall": "{number} sarà chiamato appena avrai effettuato l'accesso.",
    "notify.noNumber": "Nessun numero da chiamare",
    "notify.mainDeviceSet": "Ora le chiamate squillano su {device}.",
    "notify.mainDeviceNotSet": "Dispositivo principale non cambiato",
    "notify.signedOut": "Disconnesso",
    "notify.signedOutText": "La sessione è terminata. Accedi di nuovo dalle Impostazioni.",
    "notify.noWebEngine": "Il telefono integrato di Link richiede Qt WebEngine "
    "(pip install PySide6-Addons[webengine]).",
    "notify.openedInBrowser": "Il telefono web si è aperto nel browser.",
    "net.notHttps": "Il server {host}:{port} non usa HTTPS su quella porta. Se lì risponde in HTTP "
    "semplice, scrivi http://{host}:{port}; altrimenti controlla il numero di porta.",
    "net.tryHttps": "Il server {host}:{port} ha chiuso la connessione senza rispondere. Se usa HTTPS, "
    "scrivi https://{host}:{port}; altrimenti controlla il numero di porta.",
    "net.refused": "Nessuno risponde su {host}:{port}. Controlla il numero di porta (quello dell'indirizzo "
    "web di callto) e che il server sia acceso.",
    "net.unknownHost": "Il nome {host} non è conosciuto. Controlla come è scritto l'indirizzo del server, "
    "oppure la rete o la VPN.",
    "net.timeout": "Il server {host}:{port} non ha risposto in tempo. Controlla l'indirizzo, la rete o la VPN.",
    "net.unreachable": "Impossibile raggiungere il server {host}:{port} ({problem}). Controlla "
    "l'indirizzo, la rete o la VPN.",
    "net.notCallto": "Il server {host}:{port} ha risposto con qualcosa che non è callto (HTTP {status}). "
    "L'indirizzo è giusto?",
}

TABLES: dict[str, dict[str, str]] = {"en": EN, "it": IT}

_current: str | None = None


def system_language() -> str:
    """``it`` or ``en`` from the environment the way gettext reads it, else Qt's system locale."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        for part in value.split(":"):
            code = part.strip().split(".")[0].split("_")[0].split("-")[0].lower()
            if code in LANGUAGES:
                return code
            if code and code not in ("c", "posix"):
                return "en"
    try:
        from PySide6.QtCore import QLocale

        code = QLocale.system().name().lower()[:2]
    except ImportError:  # pragma: no cover - PySide6 is a dependency of Link
        code = ""
    return code if code in LANGUAGES else "en"


def set_language(choice: str | None) -> str:
    """Use ``choice`` (``en``, ``it``; ``auto`` or None: the system's); returns the language in use."""
    global _current
    _current = choice if choice in LANGUAGES else system_language()
    return _current


def language() -> str:
    return _current or set_language(None)


def tr(key: str, **params: Any) -> str:
    """The text ``key`` in the language in use, with ``{name}`` parameters filled in.

    A key missing in the language in use falls back to English, then to the key itself (never an
    exception in the UI); the tests make sure that never happens.
    """
    text = TABLES[language()].get(key) or EN.get(key) or key
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def tr_error(exc: BaseException) -> str:
    """An error's words in the language in use: its text id when it has one, else its own message."""
    details = getattr(exc, "details", None)
    if isinstance(details, dict) and isinstance(details.get("text"), str) and details["text"] in EN:
        params = details.get("params")
        return tr(details["text"], **(params if isinstance(params, dict) else {}))
    return str(getattr(exc, "message", None) or exc)
