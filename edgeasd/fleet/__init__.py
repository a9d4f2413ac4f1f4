"""Fleet integration: the observers the sinks feed besides the local logs.

:mod:`~edgeasd.fleet.observers` builds them from the configuration;
:mod:`~edgeasd.fleet.mqtt` (with its queue :mod:`~edgeasd.fleet.mqtt_queue`) and
:mod:`~edgeasd.fleet.metrics` are the two kinds. Importing this package imports neither paho
nor prometheus-client.
"""
