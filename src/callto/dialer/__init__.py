"""Click-to-call: turn what a user clicked into a number, check it may be dialled, and place the call.

``numbers`` parses and classifies targets (pure); ``dialplan`` holds the installation's dial plan
settings (pure). The service that picks a device and a strategy builds on both.
"""
