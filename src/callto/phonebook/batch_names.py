"""Contact names for a batch of (user, number) pairs in one query (the history's write-behind uses it).

:meth:`callto.phonebook.service.PhonebookService.name_for` answers one (user, number) at a time with one or
two queries; at hundreds of calls a second that is most of the cost of keeping the history. This asks the
phonebook's number index once for every number of a batch and picks, per user, what ``name_for`` would
have picked: a contact the user sees (shared, or their own private one), their private card first, then in
name order.

Other packages reach it through :meth:`PhonebookService.batch_names`, so the phonebook's tables stay the
phonebook's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from callto.phonebook.models import Contact, ContactNumber
from callto.phonebook.numbers import number_key

# (session, [(user id, number as dialled)]) -> the name of the contact each user sees for the number; the
# caller's session, so the batch's names and inserts share one transaction
NamesFor = Callable[[Session, Iterable[tuple[int, str]]], dict[tuple[int, str], str]]


def contact_names(country: Callable[[], str]) -> NamesFor:
    # built once: constructing the statement cost more than running it at a few calls per batch
    stmt = (
        select(ContactNumber.key, Contact.owner_id, Contact.name)
        .join(Contact, Contact.id == ContactNumber.contact_id)
        .where(
            ContactNumber.key.in_(bindparam("keys", expanding=True)),
            or_(Contact.owner_id.is_(None), Contact.owner_id.in_(bindparam("users", expanding=True))),
        )
        # the same order as PhonebookService.lookup: private before shared, then by name
        .order_by(ContactNumber.key, Contact.owner_id.is_(None), Contact.sort_key, Contact.id)
    )

    def names_for(s: Session, pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], str]:
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return {}
        region = country()
        keys = {pair: number_key(pair[1], region) for pair in wanted}
        key_set = {k for k in keys.values() if k}
        if not key_set:
            return {}
        users = sorted({user for user, _ in wanted})
        by_key: dict[str, list[tuple[int | None, str]]] = {}
        for key, owner, name in s.execute(stmt, {"keys": sorted(key_set), "users": users}):
            by_key.setdefault(key, []).append((owner, name))
        out: dict[tuple[int, str], str] = {}
        for pair, key in keys.items():
            user = pair[0]
            for owner, name in by_key.get(key, ()):
                if owner is None or owner == user:
                    out[pair] = name
                    break
        return out

    return names_for
