"""Call history: one record per call and user, written by the SIP switch through
:meth:`~callto.history.service.HistoryService.record_call`, listed per user and for administrators,
exported as CSV, with missed calls counted until the user has seen them."""
