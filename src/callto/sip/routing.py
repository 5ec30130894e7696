"""Routing a new call: who is calling, where the number goes, and the fork of branches that rings it.

Owns :class:`CallRouting`: a device's INVITE authenticated (digest 407 with the registrar's nonces), an
INVITE from a trunk host matched to the user its DID names, an extension rung on every registered contact
of every device of its user at once, an outside number sent to the trunk after the caller's outbound
class allows it, and the fork itself: one branch per :class:`~callto.sip.calls.Target`; a branch whose
media profile differs from the offer's waits for the media relay's rewritten offer (a
:class:`~callto.sip.media_effects.MediaOfferNeeded` effect) before its INVITE leaves. Auto-answer headers
arriving from outside are stripped from every INVITE relayed.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from callto.sip.auth import Verdict
from callto.sip.call_states import CallInput, CallState, move_call
from callto.sip.calls import Call, Disposition, Leg, Target, looks_like_number
from callto.sip.dialog import uas_dialog, user_of
from callto.sip.endpoint import Source
from callto.sip.grammar import SipURI, TelURI, quote
from callto.sip.location import next_hop
from callto.sip.media import MediaProfile, offer_flags
from callto.sip.message import Headers, Request, new_tag
from callto.sip.ports import Binding, SipAccount
from callto.sip.sdp import SdpError, is_webrtc, parse_sdp
from callto.sip.trunk import TrunkConfig, ip_literal

if TYPE_CHECKING:
    from callto.sip.b2bua import B2BUA

# --- auto-answer headers ------------------------------------------------------------------------------
_ALERT_AUTO = re.compile(r"auto[-_ ]?answer|autoanswer|intercom|answer-after|ring-answer|info=alert-auto", re.I)
_DROP_HEADERS = ("answer-mode", "priv-answer-mode", "p-auto-answer")


def strip_auto_answer(headers: Headers) -> list[str]:
    """Remove every auto-answer request from ``headers``; return what was removed (for the log)."""
    removed: list[str] = []
    for name in _DROP_HEADERS:
        removed += headers.get_all(name)
        headers.remove(name)
    for name, pattern in (("call-info", re.compile(r"answer-after", re.I)), ("alert-info", _ALERT_AUTO)):
        elements = headers.get_list(name)
        if not elements:
            continue
        kept = [e for e in elements if not pattern.search(e)]
        removed += [e for e in elements if pattern.search(e)]
        headers.remove(name)
        for element in kept:
            headers.add(name, element)
    return removed


# headers of the caller's INVITE that mean something to the callee and are copied to each branch
_COPIED_INVITE_HEADERS = ("subject", "alert-info", "call-info", "priority", "allow")
# The click a web phone's or Link's INVITE answers (``X-Callto-Click: c2c-<hex>``): its events and record
# carry it, so the click and the call it became are one story. Only from authenticated devices.
CLICK_HEADER = "x-callto-click"
_CLICK_ID = re.compile(r"c2c-[0-9a-f]{8,32}")


class CallRouting:
    def __init__(self, b2bua: B2BUA) -> None:
        self.b2bua = b2bua
        self.endpoint = b2bua.endpoint

    # --- a new call ------------------------------------------------------------------------------------
    def new_invite(self, request: Request, source: Source, tx_id: int, now: float) -> None:
        b2bua = self.b2bua
        ruri = request.ruri
        dialed = ruri.user if isinstance(ruri, SipURI) else (ruri.number if isinstance(ruri, TelURI) else None)
        if not dialed:
            self.endpoint.reply(tx_id, 404, now, "Not Found (no number in the Request-URI)")
            return
        to_user = user_of(request.to.uri_text)
        inbound = None
        if "proxy-authorization" not in request.headers:
            inbound = b2bua.trunks.inbound(source.addr[0], dialed) or (
                b2bua.trunks.inbound(source.addr[0], to_user) if to_user else None
            )
        account: SipAccount | None = None
        if inbound is None:
            auth = self.authenticate(request, tx_id, now)
            if auth is None:
                return
            account = auth
        body = request.body if request.content_type == "application/sdp" else b""
        offer_profile: MediaProfile | None = None
        if body:
            try:
                offer_profile = MediaProfile.WEBRTC if is_webrtc(parse_sdp(body)) else MediaProfile.PLAIN
            except SdpError as exc:
                self.endpoint.reply(tx_id, 488, now, f"Not Acceptable Here ({exc})")
                return
        frm = request.from_
        call = Call(
            id=uuid.uuid4().hex,
            kind="internal",
            started_at=now,
            from_number=account.extension if account else (user_of(frm.uri_text) or ""),
            to_number=dialed,
            caller_user_id=account.user_id if account else None,
            caller_device_id=account.device_id if account else None,
            offer=body,
            offer_profile=offer_profile,
        )
        leg = Leg(call, "a", False, source, invite=request, tx_id=tx_id)
        if account is not None:
            leg.device_id, leg.user_id = account.device_id, account.user_id
            click = request.headers.get(CLICK_HEADER)
            if click and _CLICK_ID.fullmatch(click.strip()):
                call.click_id = click.strip()
        leg.profile = call.offer_profile or (MediaProfile.WEBRTC if source.transport in ("ws", "wss") else None)
        call.a = leg
        b2bua.book.calls[call.id] = call
        b2bua.book.server[tx_id] = leg
        leg.dialog = uas_dialog(request, source, leg.local_tag, b2bua.contact(source.transport))
        display = frm.display
        if inbound is not None:
            trunk, did, ext = inbound
            call.kind = "inbound"
            call.trunk_id = trunk.id
            user_id = None
            if ext is None and b2bua.route_did is not None:
                user_id = b2bua.route_did(trunk.id, did)
            user_id = user_id or self.user_for(ext or did)
            if user_id is None:
                b2bua.end(call, now, 404, "Not Found (DID not assigned)", Disposition.FAILED, "no-route")
                return
            self.ring_user(call, user_id, display, now)
            return
        assert account is not None
        self.route_dialed(call, account, dialed, display or account.extension, now)

    def route_dialed(self, call: Call, account: SipAccount, dialed: str, display: str | None, now: float) -> None:
        """Ring what ``dialed`` names for a call placed by ``account``: its user's devices, or the trunk."""
        b2bua = self.b2bua
        user_id = self.user_for(dialed)
        if user_id is not None:
            self.ring_user(call, user_id, display, now)
            return
        out_trunk = b2bua.trunks.outbound()
        if out_trunk is None or not looks_like_number(dialed):
            b2bua.end(call, now, 404, "Not Found", Disposition.FAILED, "no-route")
            return
        if b2bua.may_call is not None and not b2bua.may_call(account, dialed):
            b2bua.end(
                call,
                now,
                403,
                "Forbidden (outbound class does not allow this number)",
                Disposition.FAILED,
                "not-permitted",
            )
            return
        call.kind = "outbound"
        self.call_trunk(call, out_trunk, dialed, now)

    def authenticate(self, request: Request, tx_id: int, now: float) -> SipAccount | None:
        b2bua = self.b2bua
        values = request.headers.get_all("proxy-authorization")
        realm = b2bua.digest.realm
        value = next((v for v in values if f'realm="{realm}"' in v), values[0] if values else None)
        found: list[SipAccount] = []

        def lookup(username: str) -> str | None:
            account = b2bua.credentials.lookup(username)
            if account is None:
                return None
            found.append(account)
            return account.password

        result = b2bua.digest.verify(value, request.method, lookup, now=now)
        if result.verdict is Verdict.OK and found:
            return found[-1]
        if result.verdict is Verdict.BAD_REQUEST:
            self.endpoint.reply(tx_id, 400, now, f"Bad Request ({result.reason})")
        elif result.verdict is Verdict.FORBIDDEN:
            self.endpoint.reply(tx_id, 403, now, f"Forbidden ({result.reason})")
        else:
            stale = result.verdict is Verdict.STALE
            user_agent = request.headers.get("user-agent")
            challenges = b2bua.digest.challenges(now, stale=stale, user_agent=user_agent)
            headers = [("Proxy-Authenticate", c) for c in challenges]
            self.endpoint.reply(tx_id, 407, now, headers=headers)
        return None

    def user_for(self, extension: str) -> str | None:
        """The user an extension names: the directory's answer, else a device registered under it."""
        b2bua = self.b2bua
        if b2bua.user_for_extension is not None:
            user_id = b2bua.user_for_extension(extension)
            if user_id is not None:
                return user_id
        for binding in b2bua.location.bindings_for_extension(extension):
            return binding.user_id
        return None

    # --- routing -------------------------------------------------------------------------------------
    def targets_for(self, bindings: list[Binding], skip_device: str | None = None) -> list[Target]:
        """One branch per binding (a WebSocket one carries WebRTC), ``skip_device``'s left out."""
        domain = self.b2bua.config.domain
        targets = []
        for binding in bindings:
            if binding.device_id == skip_device:
                continue
            transport = binding.source_transport
            profile = MediaProfile.WEBRTC if transport in ("ws", "wss") else MediaProfile.PLAIN
            dest, route = next_hop(binding)
            targets.append(
                Target(
                    dest=dest,
                    route=route,
                    ruri=binding.contact,
                    # a user without an extension (reached by a DID) is named by the device's own AOR
                    to=f"<sip:{binding.extension}@{domain}>" if binding.extension else f"<{binding.aor}>",
                    device_id=binding.device_id,
                    user_id=binding.user_id,
                    profile=profile,
                )
            )
        return targets

    def ring_user(self, call: Call, user_id: str, display: str | None, now: float) -> None:
        b2bua = self.b2bua
        call.callee_user_id = user_id
        bindings = b2bua.location.bindings_for_user(user_id)
        if not bindings:
            b2bua.end(call, now, 480, "Temporarily Unavailable (no device online)", Disposition.MISSED, "offline")
            return
        # a device calling its own extension rings the user's other devices only
        targets = self.targets_for(bindings, skip_device=call.caller_device_id)
        if not targets:
            b2bua.end(
                call, now, 480, "Temporarily Unavailable (no other device online)", Disposition.MISSED, "offline"
            )
            return
        domain = b2bua.config.domain
        from_uri = f"sip:{call.from_number}@{domain}" if call.from_number else f"sip:anonymous@{domain}"
        self.fork(call, targets, from_uri, display, now)

    def call_trunk(self, call: Call, trunk: TrunkConfig, number: str, now: float) -> None:
        b2bua = self.b2bua
        call.trunk_id = trunk.id
        dest = b2bua.trunks.dest(trunk)
        if ip_literal(dest.addr[0]) is None:  # its name is still being looked up (or cannot be)
            b2bua.end(call, now, 503, "Service Unavailable (trunk host not resolved)", Disposition.FAILED,
                      "trunk-unresolved")
            return
        host = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
        ruri = f"sip:{number}@{host}:{trunk.port}"
        cli = trunk.caller_id or trunk.username or "anonymous"
        target = Target(dest=dest, ruri=ruri, to=f"<{ruri}>", profile=MediaProfile.PLAIN, trunk=trunk)
        self.fork(call, [target], f"sip:{cli}@{host}", None, now)

    def fork(self, call: Call, targets: list[Target], from_uri: str, display: str | None, now: float) -> None:
        """Start one branch per target; a branch whose media profile differs gets the relay's offer."""
        b2bua = self.b2bua
        move_call(call, CallInput.RING)
        call.ring_deadline = now + b2bua.config.ring_timeout
        offer_profile = call.offer_profile
        mixed = [t for t in targets if offer_profile is not None and t.profile is not offer_profile]
        media = b2bua.media
        if mixed and (media is None or not media.available()):
            same = [t for t in targets if t not in mixed]
            if not same:
                reason = media.reason if media is not None else "no media relay configured"
                b2bua.end(
                    call,
                    now,
                    488,
                    "Not Acceptable Here (media relay unavailable)",
                    Disposition.FAILED,
                    "media-unavailable",
                    warning=f"media relay unavailable: {reason}",
                )
                return
            targets, mixed = same, []
        if not mixed:
            self.send_branches(call, targets, from_uri, display, {}, now)
            return
        relay_profile = mixed[0].profile
        assert offer_profile is not None
        a_tag = call.a.media_tag if call.a is not None else "a"

        def offered(sdp: str | None, why: str, now: float) -> None:
            if call.state is CallState.ENDED:
                return
            if sdp is None:
                b2bua.media_relay_failed(call, why, now)
                return
            call.media_active = True
            call.relay_profile = relay_profile
            self.send_branches(call, targets, from_uri, display, {relay_profile: sdp.encode()}, now)

        b2bua.media_requests.offer(
            call.id, a_tag, call.offer.decode(), offer_flags(offer_profile, relay_profile), offered
        )

    def send_branches(
        self,
        call: Call,
        targets: list[Target],
        from_uri: str,
        display: str | None,
        offers: dict[MediaProfile, bytes],
        now: float,
    ) -> None:
        b2bua = self.b2bua
        a = call.a
        copied: list[tuple[str, str]] = []
        if a is not None and a.invite is not None and not a.uac:
            copied = [(n, v) for n in _COPIED_INVITE_HEADERS for v in a.invite.headers.get_all(n)]
        for target in targets:
            headers = Headers()
            for route in target.route:
                headers.add("Route", route)
            from_tag = new_tag()
            name = f"{quote(display)} " if display else ""
            headers.add("From", f"{name}<{from_uri}>;tag={from_tag}")
            headers.add("To", target.to)
            headers.add("Call-ID", f"{uuid.uuid4().hex}@callto")
            headers.add("CSeq", "1 INVITE")
            headers.add("Contact", b2bua.contact(target.dest.transport))
            if copied:
                for name_, value in copied:
                    headers.add(name_, value)
                strip_auto_answer(headers)  # only the caller's headers can ask for auto-answer, never ours
            body = offers.get(target.profile, call.offer)
            if body:
                headers.add("Content-Type", "application/sdp")
            invite = Request("INVITE", target.ruri, headers, body)
            leg = Leg(
                call,
                "b",
                True,
                target.dest,
                device_id=target.device_id,
                user_id=target.user_id,
                trunk=target.trunk,
                invite=invite,
                profile=target.profile,
                local_tag=from_tag,
            )
            leg.relayed_media = target.profile in offers
            call.b.append(leg)
            if target.device_id and target.device_id not in call.devices_rung:
                call.devices_rung.append(target.device_id)
            b2bua.legs.send_invite(leg, now)
