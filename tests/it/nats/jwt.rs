//! Decentralised (operator mode) NATS auth for the credentials-file test: an operator, its
//! accounts and their users as JWTs, each signed by its issuer's nkey, and a user's `.creds`
//! file. Written from the JWT v2 claim format (`nats` claims with `type` and `version: 2`).

use std::time::{SystemTime, UNIX_EPOCH};

use nkeys::KeyPair;
use serde_json::{json, Value};

/// base64url without padding (RFC 4648 section 5), as JWTs encode their three parts.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        // 1, 2 or 3 bytes give 2, 3 or 4 characters.
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A JWT for `subject`, signed by `issuer`, with these `nats` claims.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "jti": format!("{name}-{subject}-{iat}"),
        "iat": iat,
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let header = base64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let signed = format!("{header}.{}", base64url(claims.to_string().as_bytes()));
    let signature = issuer.sign(signed.as_bytes()).expect("the issuer signs");
    format!("{signed}.{}", base64url(&signature))
}

/// The operator's own (self-signed) JWT, naming its system account.
pub fn operator(operator: &KeyPair, system_account: &KeyPair) -> String {
    let nats = json!({
        "type": "operator",
        "version": 2,
        "system_account": system_account.public_key(),
    });
    jwt(operator, &operator.public_key(), "upbit-it-operator", nats)
}

/// An account's JWT signed by `operator`, without limits; with JetStream enabled or not (the
/// server refuses to start if the system account has it).
pub fn account(operator: &KeyPair, account: &KeyPair, name: &str, jetstream: bool) -> String {
    let mut limits = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    if jetstream {
        for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[key] = json!(-1);
        }
    }
    let nats = json!({
        "type": "account",
        "version": 2,
        "limits": limits,
        "default_permissions": { "pub": {}, "sub": {} },
    });
    jwt(operator, &account.public_key(), name, nats)
}

/// A user's JWT signed by `account`, without permission limits.
pub fn user(account: &KeyPair, user: &KeyPair) -> String {
    let nats = json!({
        "type": "user",
        "version": 2,
        "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
    });
    jwt(account, &user.public_key(), "upbit-it-user", nats)
}

/// A `.creds` file's text: the user's JWT, then its nkey seed.
pub fn creds(user_jwt: &str, user: &KeyPair) -> String {
    let seed = user.seed().expect("a seed");
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[test]
fn base64url_is_rfc_4648_without_padding() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64url(plain.as_bytes()), encoded);
    }
    assert_eq!(base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
}
