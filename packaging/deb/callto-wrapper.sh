#!/bin/sh
# /usr/bin/callto: the command line on the service's settings and data, as the service's user.
# Run as root it switches to the callto user, so files it makes in /var/lib/callto stay callto's.
if [ -z "${CALLTO_CONFIG:-}" ] && [ -r /etc/callto/callto.toml ]; then
    CALLTO_CONFIG=/etc/callto/callto.toml
    export CALLTO_CONFIG
fi
: "${CALLTO_DATA_DIR:=/var/lib/callto}"
export CALLTO_DATA_DIR
if [ "$(id -u)" = 0 ]; then
    # Root may read the config the callto user may too (0640 root:callto).
    [ -z "${CALLTO_CONFIG:-}" ] && CALLTO_CONFIG=/etc/callto/callto.toml && export CALLTO_CONFIG
    exec runuser -u callto -- /opt/callto/bin/callto "$@"
fi
exec /opt/callto/bin/callto "$@"
