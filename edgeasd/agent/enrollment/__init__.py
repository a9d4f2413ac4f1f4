"""Enrollment and the bank's lifecycle: groups, the all-or-nothing commit, kept audio, rebuild.

Live and file enrollment, a recording's windows, the bank opened and checked for the agent.
May import alerts' decision (for the bank's state) and the layers below; never the run loop or
the control socket. Importing this package imports none of its modules.
"""
