"""``st2reactor.sensor``: the base classes of sensors."""
