"""SIP password guessing with a real tool: sipvicious' ``svcrack`` (Debian ``sipvicious``) from 127.0.0.5
against a running SipServer is held to a few guesses per second, then refused, and logged as security
events, while a baresip phone with the right password at its own address (127.0.0.1) keeps registering.

Guesses are counted as the server's ``403 Forbidden`` answers to the attacker (its UDP send is wrapped,
nothing replaced), so the same test measures a server without the throttle. Digest is MD5 only, as the
server's default setting (svcrack knows no SHA-256)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sip_helpers import DOMAIN, running_sip_server

from callto.security_log import security_event
from callto.sip.ports import SipAccount, StaticCredentials
from callto.sip.registrar import RegistrarConfig
from support.baresip import Account, Baresip
from support.procs import ProcessGroup
from support.tone import write_tone_wav

pytestmark = [pytest.mark.sip, pytest.mark.timeout(60)]

ATTACKER = "127.0.0.5"
USER, PASSWORD = "alice201", "Right-Pass-201"
ATTACK_SECONDS = 15.0


# svcrack 0.3.3 parses -b but never hands it to its scanner, so its socket binds 0.0.0.0 and its packets to
# 127.0.0.1 leave from 127.0.0.1, the phone's address. The Debian script is run unchanged, with the
# wildcard bind pointed at the attacker's own loopback address.
_RUN_SVCRACK = f"""
import socket, sys
_bind = socket.socket.bind
socket.socket.bind = lambda self, address: _bind(self, ("{ATTACKER}", address[1]) if not address[0] else address)
sys.argv = ["svcrack", *sys.argv[1:]]
sys.path.insert(0, "/usr/share/sipvicious")
from sipvicious.svcrack import main
main()
"""


def test_svcrack_is_held_to_a_few_guesses_per_second_and_logged_while_the_real_phone_keeps_registering(
    tmp_path: Path, procs: ProcessGroup, caplog: pytest.LogCaptureFixture
) -> None:
    if shutil.which("svcrack") is None:
        print("svcrack is not installed (Debian package sipvicious)")
        pytest.skip("svcrack is not installed (Debian package sipvicious)")
    creds = StaticCredentials([SipAccount(USER, PASSWORD, "dev-201", "user-201", "201")])
    # short registrations so the phone re-registers every few seconds during the attack
    config = RegistrarConfig(realm=DOMAIN, min_expires=1, algorithms=("MD5",))
    gen = running_sip_server(creds, registrar_config=config, security_event=security_event)
    server = next(gen)
    forbidden: list[float] = []
    udp = server.server.udp
    assert udp is not None
    inner = udp.send

    def counting_send(data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] == ATTACKER and data.startswith(b"SIP/2.0 403"):
            forbidden.append(time.monotonic())
        inner(data, addr)

    udp.send = counting_send  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="callto.security")
    words = tmp_path / "words.txt"
    words.write_text("".join(f"guess-{i}\n" for i in range(5000)) + PASSWORD + "\n")
    try:
        phone = Baresip(tmp_path, procs, name="alice", tone_wav=write_tone_wav(tmp_path / "t.wav", 440.0, 2.0),
                        account=Account(aor=f"sip:{USER}@{DOMAIN}", password=PASSWORD,
                                        outbound=f"sip:127.0.0.1:{server.port}", regint=4)).start()
        phone.wait_registered(timeout=10)
        start = time.monotonic()
        attack = subprocess.Popen(
            ["/usr/bin/python3", "-c", _RUN_SVCRACK, "-u", USER, "-d", str(words), "-p", str(server.port),
             "--maximumtime", "8", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        seen_cseqs: set[int] = set()
        try:
            while time.monotonic() - start < ATTACK_SECONDS:
                bindings = server.call(lambda: server.server.registrar.bindings("dev-201"))
                assert bindings and bindings[0].expires_at > time.time(), "the phone's registration lapsed"
                seen_cseqs.add(bindings[0].cseq)  # each refresh REGISTER has a higher CSeq
                time.sleep(0.25)
        finally:
            attack.kill()
            output = attack.communicate(timeout=5)[0]
        elapsed = time.monotonic() - start
        registrations = len(seen_cseqs) - 1  # refreshes during the attack
        guesses = len(forbidden)
        rate = guesses / elapsed
        print(output[-1500:])
        stats = getattr(getattr(server.server, "throttle", None), "stats", "none")  # "none": a server without it
        print(f"svcrack: {guesses} guesses checked in {elapsed:.1f} s ({rate:.1f}/s); "
              f"phone registered {registrations} times meanwhile; throttle {stats}")
        assert PASSWORD not in output, output[-2000:]  # the right password (last in the list) was never reached
        assert registrations >= 3, registrations
        assert rate < 3.0, (guesses, elapsed, output[-1000:])
        lines = [r.getMessage() for r in caplog.records if r.name == "callto.security"]
        ours = [line for line in lines if f"source={ATTACKER} " in line]
        assert any(re.fullmatch(rf"security event=sip-auth-failed source={ATTACKER} account={USER} count=\d+", line)
                   for line in ours), lines
        assert any(line.startswith("security event=sip-auth-blocked") for line in ours), lines
        assert len(ours) <= 3, ours  # one line per source per interval (and one when blocked), not per guess
        assert not any("source=127.0.0.1 " in line for line in lines), lines  # the phone is no suspect
    finally:
        for _ in gen:
            pass
