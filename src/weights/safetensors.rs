//! A strict reader and writer for the safetensors format (8-byte header length, JSON header, data).
//!
//! Written here rather than taken from a crate so that every malformed file gets an error that names
//! the file and the problem, and so that sizes are checked before anything is allocated.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::tensor::{numel, Tensor};

/// Headers larger than this are refused before they are parsed (the format's own reader uses 100 MB).
const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

/// One tensor's entry in the header: dtype, shape and byte range inside the data section.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A parsed safetensors file held in memory.
pub struct SafeTensors {
    context: String,
    bytes: Vec<u8>,
    data_start: usize,
    entries: Vec<Entry>,
    metadata: BTreeMap<String, String>,
}

/// Bytes per element of the dtypes safetensors defines.
fn dtype_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// The header's top-level object as an ordered list, so duplicate names can be caught.
struct Pairs(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = map.next_entry::<String, Value>()? {
                    out.push(kv);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl SafeTensors {
    /// Reads and parses a file; the error names the path.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(bytes, &path.display().to_string())
    }

    /// Parses `bytes`; `context` (a file name, say) prefixes every error.
    pub fn parse(bytes: Vec<u8>, context: &str) -> Result<Self> {
        let bad = |reason: String| Error::SafeTensors { context: context.to_string(), reason };
        if bytes.len() < 8 {
            return Err(bad(format!("file is {} bytes, shorter than the 8-byte header length", bytes.len())));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&bytes[..8]);
        let header_len = u64::from_le_bytes(len8);
        let available = bytes.len() as u64 - 8;
        if header_len > available {
            return Err(bad(format!("header declares {header_len} bytes but only {available} follow (truncated file?)")));
        }
        if header_len > MAX_HEADER_BYTES {
            return Err(bad(format!("header of {header_len} bytes is larger than the {MAX_HEADER_BYTES}-byte limit")));
        }
        let data_start = 8 + header_len as usize;
        let header = std::str::from_utf8(&bytes[8..data_start]).map_err(|e| bad(format!("header is not UTF-8: {e}")))?;
        let Pairs(pairs) =
            serde_json::from_str::<Pairs>(header.trim_end()).map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
        let data_len = bytes.len() - data_start;

        let mut metadata = BTreeMap::new();
        let mut entries: Vec<Entry> = Vec::with_capacity(pairs.len());
        let mut seen = std::collections::HashSet::new();
        for (name, value) in pairs {
            if !seen.insert(name.clone()) {
                return Err(bad(format!("tensor `{name}` appears twice in the header")));
            }
            if name == "__metadata__" {
                let obj = value.as_object().ok_or_else(|| bad("`__metadata__` is not an object".into()))?;
                for (k, v) in obj {
                    let s = v.as_str().ok_or_else(|| bad(format!("metadata `{k}` is not a string")))?;
                    metadata.insert(k.clone(), s.to_string());
                }
                continue;
            }
            entries.push(parse_entry(&name, &value, data_len).map_err(|r| bad(format!("tensor `{name}`: {r}")))?);
        }
        // Data ranges must not overlap: the format lays tensors out back to back.
        let mut ranges: Vec<(usize, usize, &str)> = entries.iter().map(|e| (e.start, e.end, e.name.as_str())).collect();
        ranges.sort();
        for w in ranges.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(bad(format!("tensors `{}` and `{}` overlap in the data section", w[0].2, w[1].2)));
            }
        }
        Ok(SafeTensors { context: context.to_string(), bytes, data_start, entries, metadata })
    }

    /// The header's `__metadata__` strings.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// All tensor entries, in header order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry named `name`, if any.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The name used in error messages (usually the file path).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// Reads tensor `name` as f32, failing with an error that names it when absent or not F32.
    pub fn tensor_f32(&self, name: &str) -> Result<Tensor> {
        let e = self.entry(name).ok_or_else(|| Error::MissingTensor { context: self.context.clone(), name: name.to_string() })?;
        if e.dtype != "F32" {
            return Err(Error::DType {
                context: self.context.clone(),
                name: name.to_string(),
                found: e.dtype.clone(),
                expected: "F32".into(),
            });
        }
        let raw = &self.bytes[self.data_start + e.start..self.data_start + e.end];
        let data = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Tensor { shape: e.shape.clone(), data })
    }
}

fn parse_entry(name: &str, value: &Value, data_len: usize) -> std::result::Result<Entry, String> {
    let obj = value.as_object().ok_or("entry is not an object")?;
    let dtype = obj.get("dtype").and_then(Value::as_str).ok_or("missing string `dtype`")?.to_string();
    let size = dtype_size(&dtype).ok_or_else(|| format!("unknown dtype `{dtype}`"))?;
    let shape = obj
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("missing array `shape`")?
        .iter()
        .map(|v| v.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or("`shape` holds something other than non-negative integers")?;
    let offsets = obj.get("data_offsets").and_then(Value::as_array).ok_or("missing array `data_offsets`")?;
    let (start, end) = match offsets.as_slice() {
        [a, b] => (a.as_u64().ok_or("`data_offsets` are not integers")?, b.as_u64().ok_or("`data_offsets` are not integers")?),
        _ => return Err("`data_offsets` must hold two integers".into()),
    };
    if start > end {
        return Err(format!("data_offsets [{start}, {end}] run backwards"));
    }
    if end > data_len as u64 {
        return Err(format!("data_offsets end at byte {end} but the data section holds {data_len} bytes (truncated file?)"));
    }
    let bytes = numel(&shape).and_then(|n| n.checked_mul(size)).ok_or_else(|| format!("shape {shape:?} overflows"))?;
    if (end - start) as usize != bytes {
        return Err(format!("shape {shape:?} of {dtype} needs {bytes} bytes but data_offsets span {}", end - start));
    }
    Ok(Entry { name: name.to_string(), dtype, shape, start: start as usize, end: end as usize })
}

/// Serialises f32 tensors (in the given order) and string metadata to safetensors bytes.
pub fn serialize(tensors: &[(&str, &Tensor)], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let meta = metadata.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        header.insert("__metadata__".into(), Value::Object(meta));
    }
    let mut offset = 0usize;
    for (name, t) in tensors {
        let len = t.data.len() * 4;
        header.insert(name.to_string(), serde_json::json!({ "dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + len] }));
        offset += len;
    }
    let mut json = Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, t) in tensors {
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a failure leaves no partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| Error::Usage(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let a = Tensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let b = Tensor::new(vec![], vec![7.5]).unwrap();
        let mut meta = BTreeMap::new();
        meta.insert("gelu".to_string(), "erf".to_string());
        serialize(&[("a", &a), ("b", &b)], &meta)
    }

    #[test]
    fn round_trip_keeps_values_shapes_and_metadata() {
        let st = SafeTensors::parse(sample(), "mem").unwrap();
        assert_eq!(st.tensor_f32("a").unwrap().data, vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(st.tensor_f32("b").unwrap().shape, Vec::<usize>::new());
        assert_eq!(st.metadata()["gelu"], "erf");
    }

    #[test]
    fn truncated_data_is_named() {
        let mut bytes = sample();
        bytes.truncate(bytes.len() - 4);
        let err = SafeTensors::parse(bytes, "mem").err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn header_longer_than_file_is_refused() {
        let mut bytes = sample();
        bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let err = SafeTensors::parse(bytes, "mem").err().unwrap().to_string();
        assert!(err.contains("header declares"), "{err}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let header = br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 8]);
        let err = SafeTensors::parse(bytes, "mem").err().unwrap().to_string();
        assert!(err.contains("appears twice"), "{err}");
    }

    #[test]
    fn wrong_dtype_is_named() {
        let header = br#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 4]);
        let st = SafeTensors::parse(bytes, "mem").unwrap();
        let err = st.tensor_f32("w").err().unwrap().to_string();
        assert!(err.contains("`w`") && err.contains("F16"), "{err}");
    }
}
