//! What becomes of the personal data in a call: masked before the model sees it or not,
//! stored masked, raw or not at all, the phone number stored, hashed or dropped. `config`
//! reads the variables into [`PrivacySettings`]; this is what they do.

use std::borrow::Cow;
use std::fmt;

/// PII_MASKING, TRANSCRIPT_STORE, PHONE_STORE (with PHONE_HASH_KEY) and RETENTION_DAYS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacySettings {
    /// PII_MASKING: transcripts are masked ([`super::mask`]) before they are sent to the model.
    pub pii_masking: bool,
    /// TRANSCRIPT_STORE: what `call_transcripts` receives.
    pub transcript_store: TranscriptStore,
    /// PHONE_STORE: what `calls.phone_number` receives.
    pub phone_store: PhoneStore,
    /// RETENTION_DAYS: transcripts and phone numbers of calls older than this many days are
    /// removed by `callq purge`; `None` keeps them.
    pub retention_days: Option<u32>,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings {
            pii_masking: true,
            transcript_store: TranscriptStore::Masked,
            phone_store: PhoneStore::Plain,
            retention_days: None,
        }
    }
}

impl PrivacySettings {
    /// The transcript as the model gets it and as it is stored (`None`: not stored),
    /// masking it at most once.
    pub fn apply<'a>(&self, transcript: &'a str) -> (Cow<'a, str>, Option<Cow<'a, str>>) {
        let masked = (self.pii_masking || self.transcript_store == TranscriptStore::Masked)
            .then(|| super::mask(transcript));
        let for_llm = match (&masked, self.pii_masking) {
            (Some(m), true) => m.clone(),
            _ => Cow::Borrowed(transcript),
        };
        let stored = match self.transcript_store {
            TranscriptStore::Masked => masked,
            TranscriptStore::Raw => Some(Cow::Borrowed(transcript)),
            TranscriptStore::None => None,
        };
        (for_llm, stored)
    }

    /// The transcript as the model gets it.
    pub fn for_llm<'a>(&self, transcript: &'a str) -> Cow<'a, str> {
        if self.pii_masking {
            super::mask(transcript)
        } else {
            Cow::Borrowed(transcript)
        }
    }

    /// The transcript as it is stored, or `None` when none is stored.
    pub fn transcript_to_store<'a>(&self, transcript: &'a str) -> Option<Cow<'a, str>> {
        match self.transcript_store {
            TranscriptStore::Masked => Some(super::mask(transcript)),
            TranscriptStore::Raw => Some(Cow::Borrowed(transcript)),
            TranscriptStore::None => None,
        }
    }

    /// The phone number as it is stored, or `None` when none is stored.
    pub fn phone_to_store(&self, phone: &str) -> Option<String> {
        match &self.phone_store {
            PhoneStore::Plain => Some(phone.to_string()),
            PhoneStore::Hash(key) => Some(super::hash_phone(key.as_bytes(), phone)),
            PhoneStore::None => None,
        }
    }
}

/// TRANSCRIPT_STORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptStore {
    /// With personal data replaced by placeholders (the default).
    Masked,
    /// As T-Bank returned it.
    Raw,
    /// Not stored at all.
    None,
}

/// PHONE_STORE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneStore {
    /// As T-Bank lists it (the default, as the old tool stored it).
    Plain,
    /// HMAC-SHA256 under PHONE_HASH_KEY, hex: the same caller, the same value.
    Hash(PhoneHashKey),
    /// Not stored.
    None,
}

/// PHONE_HASH_KEY: a secret, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneHashKey(Vec<u8>);

impl PhoneHashKey {
    pub fn new(key: impl Into<Vec<u8>>) -> PhoneHashKey {
        PhoneHashKey(key.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PhoneHashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneHashKey(***)")
    }
}

/// Shorter keys make the hashes of the few billion possible phone numbers guessable.
pub const MIN_PHONE_HASH_KEY_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_mask_and_keep_phones() {
        let d = PrivacySettings::default();
        assert!(d.pii_masking);
        assert_eq!(d.transcript_store, TranscriptStore::Masked);
        assert_eq!(d.phone_store, PhoneStore::Plain);
        assert_eq!(d.retention_days, None);
        assert_eq!(d.for_llm("тел. 89161234567"), "тел. [ТЕЛЕФОН]");
        assert_eq!(
            d.transcript_to_store("тел. 89161234567").as_deref(),
            Some("тел. [ТЕЛЕФОН]")
        );
        assert_eq!(
            d.phone_to_store("79161234567").as_deref(),
            Some("79161234567")
        );
    }

    #[test]
    fn unmasked_unstored_and_hashed() {
        let p = PrivacySettings {
            pii_masking: false,
            transcript_store: TranscriptStore::None,
            phone_store: PhoneStore::Hash(PhoneHashKey::new("0123456789abcdef0123")),
            retention_days: Some(90),
        };
        assert_eq!(p.for_llm("тел. 89161234567"), "тел. 89161234567");
        assert_eq!(p.transcript_to_store("тел. 89161234567"), None);
        assert_eq!(
            p.phone_to_store("+7 916 123-45-67"),
            Some(super::super::hash_phone(
                b"0123456789abcdef0123",
                "89161234567"
            ))
        );
        // The key never shows in a debug print of the settings.
        assert!(!format!("{p:?}").contains("0123456789abcdef"), "{p:?}");
        let p = PrivacySettings {
            transcript_store: TranscriptStore::Raw,
            phone_store: PhoneStore::None,
            ..p
        };
        assert_eq!(
            p.transcript_to_store("89161234567").as_deref(),
            Some("89161234567")
        );
        assert_eq!(p.phone_to_store("89161234567"), None);
    }
}
