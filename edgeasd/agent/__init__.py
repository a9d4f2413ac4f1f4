"""The agent's runtime: the daemon and everything it runs, in five rooms.

* :mod:`~edgeasd.agent.runloop`: the run loop (daemon, stages, sd_notify);
* :mod:`~edgeasd.agent.control`: the control socket (protocol, server, client), the daemon's
  command side and its status;
* :mod:`~edgeasd.agent.enrollment`: enrollment and the bank's lifecycle (groups, commit, kept
  audio, rebuild);
* :mod:`~edgeasd.agent.alerts`: decisions, the threshold policy, the detector, alert audio, the
  event logs and sinks;
* :mod:`~edgeasd.agent.service`: the systemd unit and ``edgeasd doctor``.

The agent imports the layers below it (fleet, scoring, audio, embedding, config); none of them
imports the agent. ARCHITECTURE.md lists each module. Importing this package imports none of
them.
"""
