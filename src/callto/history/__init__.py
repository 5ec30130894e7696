"""Call history: one record per call and user, handed in by the SIP switch (an answered call's at its answer,
completed at its end) through :meth:`~callto.history.service.HistoryService.record_later`, listed per user
and for administrators, exported as CSV, with missed calls counted until the user has seen them."""
