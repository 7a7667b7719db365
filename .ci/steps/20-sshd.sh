# SSH target tests: an OpenSSH server (the tests start their own sshd on 127.0.0.1 with generated keys,
# nothing system-wide) and rsync for the upload benchmark's baseline.
if ! command -v /usr/sbin/sshd >/dev/null || ! command -v rsync >/dev/null || ! command -v ssh >/dev/null; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends openssh-server openssh-client rsync
fi
mkdir -p /run/sshd
