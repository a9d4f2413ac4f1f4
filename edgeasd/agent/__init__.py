"""The agent's runtime: the daemon and everything it runs.

The run loop (:mod:`~edgeasd.agent.runloop.daemon`) and its control commands
(:mod:`~edgeasd.agent.control.commands`, :mod:`~edgeasd.agent.control.server`), the stages it builds
(:mod:`~edgeasd.agent.runloop.stages`), the decision and detector
(:mod:`~edgeasd.agent.alerts.decision`,
:mod:`~edgeasd.agent.alerts.detector`), the sinks and notifications, enrollment and the bank's
lifecycle, status, paths, kept audio, the doctor and the systemd unit. ARCHITECTURE.md lists
each module. Importing this package imports none of them.
"""
