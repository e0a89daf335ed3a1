"""The audit trail: every event on an :class:`eventbus.EventBus` as an audit entry."""

__all__: list[str] = []
