//! Telegram Mini App launch data (`initData`): the check Telegram specifies.
//!
//! secret = HMAC-SHA256(key = "WebAppData", msg = bot token); the data-check string is every
//! field but `hash`, sorted by key, `key=value` joined by `\n`; `hash` is the lower-case hex of
//! HMAC-SHA256(key = secret, msg = data-check string), compared in constant time. Data older
//! than `maxAge` (by `auth_date`) is refused too.

use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why launch data was refused. None of them carries the data itself (it is a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no `Authorization: tma <initData>` header")]
    Missing,
    #[error("the launch data has no hash")]
    NoHash,
    #[error("the launch data's signature does not match")]
    BadSignature,
    #[error("the launch data has no valid auth_date or user, or a field twice")]
    Malformed,
    #[error("the launch data is older than the dashboard's maxAge")]
    Stale,
}

/// Who opened the Mini App, as Telegram vouches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user_id: i64,
    pub auth_date: i64,
}

/// HMAC-SHA256 (RFC 2104) over SHA-256's 64-byte blocks.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0_u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The key launch data is signed with: HMAC-SHA256 of the bot token keyed with "WebAppData".
pub fn secret_key(bot_token: &str) -> [u8; 32] {
    hmac_sha256(b"WebAppData", bot_token.as_bytes())
}

/// The decoded fields of `init_data` but `hash`, sorted by key and joined as Telegram does,
/// and the hash. A field given twice is refused: which one would count is ambiguous.
fn data_check_string(init_data: &str) -> Result<(String, String), AuthError> {
    let mut hash = None;
    let mut fields: Vec<(String, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(init_data.as_bytes()) {
        if key == "hash" {
            if hash.replace(value.into_owned()).is_some() {
                return Err(AuthError::Malformed);
            }
        } else {
            fields.push((key.into_owned(), value.into_owned()));
        }
    }
    fields.sort();
    if fields.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(AuthError::Malformed);
    }
    Ok((join_sorted(&fields), hash.ok_or(AuthError::NoHash)?))
}

/// Sorted fields as `key=value` lines.
fn join_sorted<K: std::fmt::Display, V: std::fmt::Display>(fields: &[(K, V)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Signs `fields` as Telegram does: the raw `initData` query string with `hash` appended. For
/// tests and tools that stand in for Telegram.
pub fn sign(bot_token: &str, fields: &[(&str, &str)]) -> String {
    let mut sorted: Vec<_> = fields.to_vec();
    sorted.sort();
    let check = join_sorted(&sorted);
    let hash = hex::encode(hmac_sha256(&secret_key(bot_token), check.as_bytes()));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().copied())
        .append_pair("hash", &hash)
        .finish()
}

/// Checks `init_data` against `secret` (see [`secret_key`]) at `now_secs`.
pub fn verify(
    init_data: &str,
    secret: &[u8; 32],
    max_age: Duration,
    now_secs: i64,
) -> Result<Verified, AuthError> {
    let (check, hash) = data_check_string(init_data)?;
    let expected = hex::encode(hmac_sha256(secret, check.as_bytes()));
    if !bool::from(
        expected
            .as_bytes()
            .ct_eq(hash.to_ascii_lowercase().as_bytes()),
    ) {
        return Err(AuthError::BadSignature);
    }
    let field = |name: &str| {
        form_urlencoded::parse(init_data.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let auth_date: i64 = field("auth_date")
        .and_then(|d| d.parse().ok())
        .ok_or(AuthError::Malformed)?;
    let user_id = field("user")
        .and_then(|u| serde_json::from_str::<serde_json::Value>(&u).ok())
        .and_then(|u| u["id"].as_i64())
        .ok_or(AuthError::Malformed)?;
    let age = now_secs.saturating_sub(auth_date);
    if age > i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX) {
        return Err(AuthError::Stale);
    }
    Ok(Verified { user_id, auth_date })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456:TEST-token_for-e2e";
    const USER: &str = r#"{"id":42,"first_name":"Anna","username":"anna"}"#;
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// initData built by hand, step by step as Telegram's documentation describes it.
    fn documented(auth_date: i64) -> String {
        let query_id = "AAHdF6IQAAAAAN0XohDhrOrc";
        let check = format!("auth_date={auth_date}\nquery_id={query_id}\nuser={USER}");
        let secret = hmac_sha256(b"WebAppData", TOKEN.as_bytes());
        let hash = hex::encode(hmac_sha256(&secret, check.as_bytes()));
        let user = form_urlencoded::byte_serialize(USER.as_bytes()).collect::<String>();
        format!("query_id={query_id}&user={user}&auth_date={auth_date}&hash={hash}")
    }

    #[test]
    fn accepts_what_telegram_signs() {
        let now = 1_765_000_000;
        let verified = verify(&documented(now - 60), &secret_key(TOKEN), HOUR, now).unwrap();
        assert_eq!(
            verified,
            Verified {
                user_id: 42,
                auth_date: now - 60
            }
        );
        let signed = sign(
            TOKEN,
            &[("user", USER), ("auth_date", &(now - 5).to_string())],
        );
        assert_eq!(
            verify(&signed, &secret_key(TOKEN), HOUR, now)
                .unwrap()
                .user_id,
            42
        );
    }

    #[test]
    fn refuses_tampered_stale_unsigned_and_foreign_data() {
        let now = 1_765_000_000;
        let secret = secret_key(TOKEN);
        let good = documented(now - 60);
        let tampered = good.replace("%22id%22%3A42", "%22id%22%3A43");
        assert_ne!(tampered, good);
        assert_eq!(
            verify(&tampered, &secret, HOUR, now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&documented(now - 3601), &secret, HOUR, now),
            Err(AuthError::Stale)
        );
        let unsigned = good.split("&hash=").next().unwrap().to_owned();
        assert_eq!(
            verify(&unsigned, &secret, HOUR, now),
            Err(AuthError::NoHash)
        );
        assert_eq!(
            verify(&good, &secret_key("654321:other-bot"), HOUR, now),
            Err(AuthError::BadSignature)
        );
    }
}
