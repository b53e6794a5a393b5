//! Payload codecs: how a record's payload `T` becomes bytes.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// The serde codec of record payloads, chosen when a journal is created and
/// stored in every segment header, so a tool can open a journal without
/// knowing the payload type.
///
/// Only the payload goes through the codec; the envelope's metadata has a
/// fixed binary layout of its own (see [`format`](crate::format)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// [postcard](https://docs.rs/postcard): compact, varint-based, not
    /// self-describing. The default.
    #[default]
    Postcard,
    /// JSON (`serde_json`): larger and slower, but readable by any tool.
    Json,
}

impl Codec {
    /// The id stored in segment headers: 1 for postcard, 2 for JSON.
    pub const fn id(self) -> u8 {
        match self {
            Codec::Postcard => 1,
            Codec::Json => 2,
        }
    }

    /// The codec with this header id.
    pub const fn from_id(id: u8) -> Option<Codec> {
        match id {
            1 => Some(Codec::Postcard),
            2 => Some(Codec::Json),
            _ => None,
        }
    }

    /// Appends the encoding of `value` to `out`. On error, `out` keeps its
    /// length from before the call.
    pub(crate) fn encode_into<T: Serialize + ?Sized>(
        self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let start = out.len();
        let result = match self {
            Codec::Postcard => postcard::to_io(value, &mut *out)
                .map(drop)
                .map_err(|e| e.to_string()),
            Codec::Json => serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string()),
        };
        result.map_err(|message| {
            out.truncate(start);
            Error::Encode { message }
        })
    }

    /// Decodes a whole payload (trailing bytes are an error).
    pub(crate) fn decode<T: DeserializeOwned>(self, bytes: &[u8], seq: u64) -> Result<T> {
        let err = |message: String| Error::Decode { seq, message };
        match self {
            Codec::Postcard => match postcard::take_from_bytes::<T>(bytes) {
                Ok((v, [])) => Ok(v),
                Ok((_, rest)) => Err(err(format!("{} trailing bytes", rest.len()))),
                Err(e) => Err(err(e.to_string())),
            },
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| err(e.to_string())),
        }
    }
}
