"""The agent as a system service: the systemd unit's installation and ``edgeasd doctor``.

May import the run loop's stages, enrollment, alerts and the layers below. Importing this
package imports none of its modules.
"""
