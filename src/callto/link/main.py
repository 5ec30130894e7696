"""``callto-link``: the command line of callto Link.

``callto-link``                    start Link (tray), or show the running one
``callto-link "tel:+39..."``       call: hand the link to the running Link, or start Link and call
``--register-handlers``            make Link the OS handler for tel: and callto: (``--unregister-handlers``)
``--windows-reg`` / ``--macos-plist``  print the Windows .reg / macOS Info.plist Link would install
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from callto import __version__
from callto.link import APP_NAME, handlers

_SETTING_HELP = {
    "server_url": "the callto server (https://pbx:8443)",
    "username": "who logs in (the token is in the system keyring, else session.json, 0600)",
    "main_device_id": "the device clicks ring",
    "link_device_id": "this computer's Link device",
    "trusted_cert_sha256": "the server certificate you trusted (self-signed servers)",
    "shortcut": "the global shortcut that dials the selected number",
    "start_at_login": "start Link when you log in",
    "language": "auto (the system's), en or it",
}


def _epilog() -> str:
    """Where Link keeps its settings, which it keeps, and the variables it reads (for ``--help``)."""
    import dataclasses

    from callto.link.secrets import Settings, config_dir

    lines = [f"settings (Settings window; stored in {config_dir() / 'settings.json'}):"]
    for f in dataclasses.fields(Settings):
        if f.name in _SETTING_HELP:
            lines.append(f"  {f.name:<22} {_SETTING_HELP[f.name]}")
    lines += [
        "",
        "environment variables:",
        "  CALLTO_LINK_LOG_LEVEL  log level on stderr (default INFO)",
        "  CALLTO_LINK_CONFIG_DIR folder for settings.json and session.json (default: the per-user config folder)",
        "  CALLTO_LINK_INSTANCE   name of the single-instance socket (tests)",
        "  LANGUAGE, LC_ALL, LC_MESSAGES, LANG  the language when language is auto",
    ]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def format_help(self) -> str:
        # built only for --help: it imports the settings module (keyring), which a click must not wait for
        self.epilog = _epilog()
        return super().format_help()


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="callto-link", description=f"{APP_NAME}: click-to-call from the desktop",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("urls", nargs="*", help="tel:, callto: or sip: links (or numbers) to call")
    p.add_argument("--register-handlers", action="store_true", help="make Link the handler for tel:/callto:")
    p.add_argument("--unregister-handlers", action="store_true", help="undo --register-handlers")
    p.add_argument("--windows-reg", action="store_true", help="print the Windows registry entries (.reg)")
    p.add_argument("--macos-plist", action="store_true", help="print the macOS Info.plist")
    p.add_argument("--background", action="store_true", help="start in the tray without opening windows")
    p.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=os.environ.get("CALLTO_LINK_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.register_handlers or args.unregister_handlers:
        report = handlers.register() if args.register_handlers else handlers.unregister()
        for line in report.lines:
            print(line)
        return 0 if report.ok else 1
    if args.windows_reg:
        sys.stdout.write(handlers.windows_reg_text(handlers.windows_entries(handlers.launcher_command())))
        return 0
    if args.macos_plist:
        sys.stdout.write(handlers.macos_info_plist().decode())
        return 0
    return run_app(args.urls, background=args.background)


def run_app(urls: list[str], *, background: bool = False) -> int:
    from callto.link.single import SingleInstance, forward

    # The fast path: a Link already runs, so hand over and exit before loading any widgets.
    if forward(urls):
        logging.getLogger("callto.link").info("handed %d link(s) to the running Link", len(urls))
        return 0
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium refuses its sandbox as root; Link as root only happens in containers and tests.
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")

    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtWidgets import QApplication

    from callto.link.app import LinkController, UrlOpenFilter
    from callto.link.tray import LinkUi

    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    app = QApplication([sys.argv[0]])
    app.setApplicationName(APP_NAME)
    app.setQuitOnLastWindowClosed(False)
    single = SingleInstance()
    if not single.listen():
        return 0 if forward(urls) else 1
    controller = LinkController()
    ui = LinkUi(controller)
    single.url_received.connect(controller.handle_url)
    single.activated.connect(ui.show_settings)
    url_filter = UrlOpenFilter(controller.handle_url)
    app.installEventFilter(url_filter)
    _watch_network(controller)
    ui.show()
    controller.start()
    for url in urls:
        controller.handle_url(url)
    if not background and not controller.settings.server_url:
        ui.show_settings()
    logging.getLogger("callto.link").info("ready (instance %s)", single.name)
    try:
        return app.exec()
    finally:
        controller.shutdown()
        single.close()


def _watch_network(controller: object) -> None:
    """Reconnect the event stream as soon as the OS reports the network is back (Wi-Fi, VPN, wake-up)."""
    from PySide6.QtNetwork import QNetworkInformation

    from callto.link.app import LinkController

    assert isinstance(controller, LinkController)
    if not QNetworkInformation.loadDefaultBackend():
        return
    info = QNetworkInformation.instance()
    if info is None:
        return

    def changed(reachability: QNetworkInformation.Reachability) -> None:
        if reachability == QNetworkInformation.Reachability.Online:
            controller.nudge_events()

    info.reachabilityChanged.connect(changed)


if __name__ == "__main__":
    sys.exit(main())
