//! How a namespace's values become bytes in Redis: [`Codec`], with [`Json`] for any serde
//! type (readable by services in other languages) and [`Raw`] for values that are bytes
//! already (`strata serve`'s, for one).

use std::error::Error;

/// Turns values of type `V` into bytes and back.
pub trait Codec<V>: Send + Sync + 'static {
    /// Appends `value`'s bytes to `out`.
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// The value `bytes` hold.
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError>;
}

/// A value that could not be encoded or decoded.
pub type CodecError = Box<dyn Error + Send + Sync + 'static>;

/// JSON through serde: any `Serialize + DeserializeOwned` value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<V> Codec<V> for Json
where
    V: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        serde_json::to_writer(out, value).map_err(Into::into)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        serde_json::from_slice(bytes).map_err(Into::into)
    }
}

/// The bytes themselves, for values that are bytes (or UTF-8 text).
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec<Vec<u8>> for Raw {
    fn encode(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

impl Codec<Box<[u8]>> for Raw {
    fn encode(&self, value: &Box<[u8]>, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Box<[u8]>, CodecError> {
        Ok(bytes.into())
    }
}

impl Codec<String> for Raw {
    fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        Ok(std::str::from_utf8(bytes)?.to_owned())
    }
}
