//! Writes an ed25519 private key in OpenSSH's own format (shared, pure: used by bakerd for the
//! build's key file and by the simulator for CreateKeyPair) (`-----BEGIN OPENSSH PRIVATE KEY-----`),
//! which is what `ssh -i` on Debian 12 (OpenSSH 9.2) loads; it refuses PKCS#8 ed25519 PEM
//! ("error in libcrypto"). Format: PROTOCOL.key in the OpenSSH sources, unencrypted.

use base64::Engine;

const MAGIC: &[u8] = b"openssh-key-v1\0";
const KEY_TYPE: &[u8] = b"ssh-ed25519";
/// Block size of the "none" cipher: the private section is padded to a multiple of it.
const BLOCK: usize = 8;
/// OpenSSH wraps the base64 body at 70 columns.
const LINE: usize = 70;

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn public_blob(public: &[u8]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_string(&mut blob, KEY_TYPE);
    put_string(&mut blob, public);
    blob
}

/// The unencrypted private section: check ints, key, comment, padding 1, 2, 3, ...
fn private_section(keypair: &[u8; 64], comment: &str, check: u32) -> Vec<u8> {
    let mut section = Vec::new();
    section.extend_from_slice(&check.to_be_bytes());
    section.extend_from_slice(&check.to_be_bytes());
    put_string(&mut section, KEY_TYPE);
    put_string(&mut section, &keypair[32..]);
    put_string(&mut section, keypair);
    put_string(&mut section, comment.as_bytes());
    let mut pad = 1u8;
    while section.len() % BLOCK != 0 {
        section.push(pad);
        pad += 1;
    }
    section
}

/// `keypair` is libsodium's 64-byte secret key: the 32-byte seed followed by the public key.
/// `check` is any random number (it lets a reader detect a wrong passphrase).
pub fn encode_ed25519(keypair: &[u8; 64], comment: &str, check: u32) -> String {
    let mut raw = MAGIC.to_vec();
    put_string(&mut raw, b"none");
    put_string(&mut raw, b"none");
    put_string(&mut raw, b"");
    raw.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut raw, &public_blob(&keypair[32..]));
    let mut private = private_section(keypair, comment, check);
    put_string(&mut raw, &private);
    private.fill(0);
    let body = base64::engine::general_purpose::STANDARD.encode(&raw);
    // Key material must not linger in freed memory.
    raw.fill(0);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(LINE) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// OpenSSH's own ssh-keygen must read the key back and derive the same public key.
    #[test]
    fn ssh_keygen_reads_the_key_and_derives_its_public_key() {
        let key = thrussh_keys::key::KeyPair::generate_ed25519().expect("generate");
        let thrussh_keys::key::KeyPair::Ed25519(secret) = &key;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        std::fs::write(
            &path,
            encode_ed25519(&secret.key, "test-comment", 0x1234_5678),
        )
        .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("run ssh-keygen");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8_lossy(&out.stdout);
        let expected =
            base64::engine::general_purpose::STANDARD.encode(public_blob(&secret.key[32..]));
        assert!(
            derived.starts_with(&format!("ssh-ed25519 {expected}")),
            "{derived}"
        );
    }
}
