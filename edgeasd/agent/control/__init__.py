"""The control socket: its wire protocol, server and client, the daemon's command side, status.

What ``edgeasd enroll``, ``status`` and ``reload`` say to a running daemon, and how the daemon
answers. May import enrollment, alerts and the layers below; never the run loop. Importing this
package imports none of its modules.
"""
