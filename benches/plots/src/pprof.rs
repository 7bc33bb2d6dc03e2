//! The profiler's folded stacks as a pprof profile: the protobuf message of
//! pprof's `profile.proto` (github.com/google/pprof, proto/profile.proto),
//! which `pprof`, `go tool pprof` and many viewers read. The messages below
//! declare the fields memres fills, with the schema's field numbers; prost
//! encodes them.

use std::collections::HashMap;

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Index 0 is "", as the schema requires.
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// Innermost first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
}

/// Builds the profile of folded `text`: one sample per stack, its value
/// the estimated bytes ("alloc_space", "bytes"); one function and one
/// location per distinct frame name (the resource frame included).
pub fn from_folded(text: &str) -> Result<Profile, String> {
    let stacks = crate::profile::parse(text)?;
    let mut strings: Vec<String> = vec![String::new()];
    let mut string_ids: HashMap<String, i64> = HashMap::new();
    let mut intern = |s: &str| -> i64 {
        *string_ids.entry(s.to_owned()).or_insert_with(|| {
            strings.push(s.to_owned());
            strings.len() as i64 - 1
        })
    };
    let sample_type = vec![ValueType { r#type: intern("alloc_space"), unit: intern("bytes") }];
    let mut frame_ids: HashMap<&str, u64> = HashMap::new();
    let (mut function, mut location) = (Vec::new(), Vec::new());
    let mut sample = Vec::new();
    for (frames, bytes) in &stacks {
        let mut ids = Vec::with_capacity(frames.len());
        for &frame in frames.iter().rev() {
            let id = *frame_ids.entry(frame).or_insert_with(|| {
                let id = function.len() as u64 + 1;
                function.push(Function { id, name: intern(frame) });
                location.push(Location { id, line: vec![Line { function_id: id }] });
                id
            });
            ids.push(id);
        }
        sample.push(Sample { location_id: ids, value: vec![i64::try_from(*bytes).unwrap_or(i64::MAX)] });
    }
    Ok(Profile { sample_type, sample, location, function, string_table: strings })
}

/// Writes the pprof profile of folded `text` to `out` (uncompressed
/// protobuf, which pprof reads as it reads gzipped ones).
pub fn write(text: &str, out: &str) -> Result<(), String> {
    let profile = from_folded(text)?;
    std::fs::write(out, profile.encode_to_vec()).map_err(|e| format!("{out}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_decodes_to_the_stacks_and_bytes() {
        let folded = "Monotonic;main;parse_headers 600\nMonotonic;main;rank_words 300\n";
        let bytes = from_folded(folded).unwrap().encode_to_vec();
        let profile = Profile::decode(bytes.as_slice()).unwrap();
        let name = |id: u64| {
            let f = profile.function.iter().find(|f| f.id == id).unwrap();
            profile.string_table[f.name as usize].clone()
        };
        assert_eq!(profile.string_table[0], "", "string 0 is empty");
        let ty = &profile.sample_type[0];
        assert_eq!(
            (profile.string_table[ty.r#type as usize].as_str(), profile.string_table[ty.unit as usize].as_str()),
            ("alloc_space", "bytes")
        );
        let stacks: Vec<(Vec<String>, i64)> =
            profile.sample.iter().map(|s| (s.location_id.iter().map(|&id| name(id)).collect(), s.value[0])).collect();
        assert_eq!(
            stacks,
            [
                (vec!["parse_headers".into(), "main".into(), "Monotonic".into()], 600),
                (vec!["rank_words".into(), "main".into(), "Monotonic".into()], 300)
            ]
        );
        assert_eq!(profile.function.len(), 4, "one function per distinct frame");
    }
}
