"""The agent's runtime: the daemon and everything it runs.

The run loop (:mod:`~edgeasd.agent.daemon`) and its control commands
(:mod:`~edgeasd.agent.commands`, :mod:`~edgeasd.agent.control`), the stages it builds
(:mod:`~edgeasd.agent.stages`), the decision and detector (:mod:`~edgeasd.agent.decision`,
:mod:`~edgeasd.agent.detect`), the sinks and notifications, enrollment and the bank's
lifecycle, status, paths, kept audio, the doctor and the systemd unit. ARCHITECTURE.md lists
each module. Importing this package imports none of them.
"""
