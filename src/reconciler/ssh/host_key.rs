//! Server host keys as bakerd pins them.

use serde::{Deserialize, Serialize};
use thrussh_keys::key::PublicKey;
use thrussh_keys::PublicKeyBase64;

/// A server's host public key, pinned on first contact and compared on every later connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKey {
    /// OpenSSH public key line without comment: `ssh-ed25519 AAAA…` (the `known_hosts` form).
    pub openssh: String,
    /// `SHA256:…` fingerprint, as `ssh-keygen -l` prints it, for messages.
    pub fingerprint: String,
}

impl HostKey {
    /// The pinnable form of a key received from a server.
    pub fn from_public(key: &PublicKey) -> HostKey {
        HostKey {
            openssh: format!("{} {}", key.name(), key.public_key_base64()),
            fingerprint: format!("SHA256:{}", key.fingerprint()),
        }
    }

    /// Parses an OpenSSH public key line (`type base64 [comment]`), e.g. a host's
    /// `/etc/ssh/ssh_host_ed25519_key.pub`. `None` if it is not a key thrussh understands.
    pub fn parse_openssh(line: &str) -> Option<HostKey> {
        let mut parts = line.split_whitespace();
        let _kind = parts.next()?;
        let key = thrussh_keys::parse_public_key_base64(parts.next()?).ok()?;
        Some(HostKey::from_public(&key))
    }

    /// Whether `other` is the same key. Compares the key blob (which includes its type).
    pub fn same_key(&self, other: &HostKey) -> bool {
        blob(&self.openssh).is_some() && blob(&self.openssh) == blob(&other.openssh)
    }
}

fn blob(openssh: &str) -> Option<&str> {
    openssh.split_whitespace().nth(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_key_matches_itself_and_not_another() {
        let a = thrussh_keys::key::KeyPair::generate_ed25519().unwrap();
        let b = thrussh_keys::key::KeyPair::generate_ed25519().unwrap();
        let ka = HostKey::from_public(&a.clone_public_key());
        let kb = HostKey::from_public(&b.clone_public_key());
        let line = format!("{} root@host", ka.openssh);
        assert_eq!(HostKey::parse_openssh(&line), Some(ka.clone()));
        assert!(ka.same_key(&ka));
        assert!(!ka.same_key(&kb));
        assert!(ka.fingerprint.starts_with("SHA256:"));
    }
}
