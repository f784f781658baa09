//! The native metric lane: plain `metric` records straight to PostgreSQL's binary COPY rows.
//!
//! `ingest.lane.FastLane` turns a metric record into its `metrics` row in ~2 µs of Python; the
//! worker's bookkeeping and asyncpg's COPY encoding of that row cost as much again. This module
//! does all three for a whole fetched chunk in one call, for the records it is sure about, and
//! names the others, which the worker hands to the Python lane and the general path as before.
//!
//! It is an optimisation of the Python lane, never a contract of its own: it takes a record
//! only in a shape narrower than what the lane takes (one object, only the metric's own
//! fields, each at most once, integer or plain-decimal numbers, flat tags of strings, integers,
//! booleans and nulls, RFC 3339 times in UTC with at most microseconds), and for every record
//! it takes, its row is the lane's row byte for byte once encoded. `tests/unit/test_native.py`
//! holds it to that over fixed cases and mutated records; anything it is unsure of it refuses.

// pyo3 0.22's #[pyfunction] expansion trips this lint on every PyResult function.
#![allow(clippy::useless_conversion)]

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::collections::HashSet;

/// Days from 1970-01-01 to 2000-01-01, where PostgreSQL's timestamps count from.
const PG_EPOCH_DAYS_FROM_CIVIL: i64 = 10957;
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// 1970-01-01 in PostgreSQL's microseconds since 2000-01-01.
const UNIX_EPOCH_PG_MICROS: i64 = -PG_EPOCH_DAYS_FROM_CIVIL * MICROS_PER_DAY;
/// The metrics row's column count, in `ingest.tables` order: node_id, metric_type,
/// metric_name, metric_value, unit, tags, recorded_at.
const COLUMNS: i16 = 7;
/// Integers the lane reads exactly as they are: at most this many digits.
const MAX_INT_DIGITS: usize = 15;
/// Decimal mantissas longer than this are left to the Python lane.
const MAX_FLOAT_DIGITS: usize = 17;

struct Limits {
    latest: i64,
    oldest: i64,
    wire_version: i64,
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

enum Number {
    Int(i64),
    Float(f64),
}

/// One tag value as the Python lane's `orjson.dumps` writes it back.
enum TagValue<'a> {
    Str(&'a [u8]),
    Int(i64),
    Literal(&'static [u8]),
}

impl<'a> Parser<'a> {
    #[inline]
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// A string's raw bytes. The caller made sure the record holds no backslash (so no
    /// escapes) and is valid UTF-8; control characters are invalid JSON and refused.
    #[inline]
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if c == b'"' {
                let s = &self.b[start..self.i];
                self.i += 1;
                return Some(s);
            }
            if c < 0x20 {
                return None;
            }
            self.i += 1;
        }
        None
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// `null`, consumed, or nothing consumed.
    #[inline]
    fn null(&mut self) -> bool {
        self.literal(b"null").is_some()
    }

    /// A JSON number in its strict grammar, narrowed: integers of at most 15 digits, decimals
    /// of at most 17 mantissa digits and an exponent of at most three digits.
    fn number(&mut self) -> Option<Number> {
        let start = self.i;
        let negative = self.eat(b'-').is_some();
        let int_start = self.i;
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        let int_digits = self.i - int_start;
        let mut frac_digits = 0;
        let mut is_float = false;
        if self.eat(b'.').is_some() {
            is_float = true;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
                frac_digits += 1;
            }
            if frac_digits == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            is_float = true;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let exp_start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            let exp_digits = self.i - exp_start;
            if exp_digits == 0 || exp_digits > 3 {
                return None;
            }
        }
        if !is_float {
            if int_digits > MAX_INT_DIGITS {
                return None;
            }
            let mut v: i64 = 0;
            for &c in &self.b[int_start..self.i] {
                v = v * 10 + i64::from(c - b'0');
            }
            return Some(Number::Int(if negative { -v } else { v }));
        }
        // Significant digits: leading zeros ("0.000123") do not count.
        let mantissa =
            &self.b[int_start..int_start + int_digits + usize::from(frac_digits > 0) + frac_digits];
        let significant = mantissa
            .iter()
            .filter(|c| c.is_ascii_digit())
            .skip_while(|&&c| c == b'0')
            .count();
        if significant > MAX_FLOAT_DIGITS {
            return None;
        }
        // Correctly rounded, as the Python lane's parser is.
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        text.parse::<f64>().ok().map(Number::Float)
    }

    fn int(&mut self) -> Option<i64> {
        match self.number()? {
            Number::Int(v) => Some(v),
            Number::Float(_) => None,
        }
    }

    /// A flat object of tags, written back compactly into `out` as `orjson.dumps` would.
    fn tags(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        out.push(b'{');
        if self.eat(b'}').is_some() {
            out.push(b'}');
            return Some(());
        }
        let mut keys: Vec<&'a [u8]> = Vec::new();
        loop {
            self.ws();
            let key = self.string()?;
            // A repeated key: the last value wins in Python, at the first key's place; rare
            // enough to leave to the Python lane.
            if keys.contains(&key) {
                return None;
            }
            keys.push(key);
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = match self.peek()? {
                b'"' => TagValue::Str(self.string()?),
                b't' => {
                    self.literal(b"true")?;
                    TagValue::Literal(b"true")
                }
                b'f' => {
                    self.literal(b"false")?;
                    TagValue::Literal(b"false")
                }
                b'n' => {
                    self.literal(b"null")?;
                    TagValue::Literal(b"null")
                }
                _ => TagValue::Int(self.int()?),
            };
            if keys.len() > 1 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key);
            out.extend_from_slice(b"\":");
            match value {
                TagValue::Str(s) => {
                    out.push(b'"');
                    out.extend_from_slice(s);
                    out.push(b'"');
                }
                TagValue::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
                TagValue::Literal(w) => out.extend_from_slice(w),
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    out.push(b'}');
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

#[inline]
fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The canonical 8-4-4-4-12 form only, any case: the form the Python lane takes.
fn uuid(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < 36 {
        if i == 8 || i == 13 || i == 18 || i == 23 {
            if text[i] != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        out[n] = (hex(text[i])? << 4) | hex(text[i + 1])?;
        n += 1;
        i += 2;
    }
    Some(out)
}

fn digits(text: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+00:00)` as PostgreSQL's microseconds since 2000; any
/// other shape (another offset, a lower-case letter, a space, more digits) is the Python
/// lane's to parse.
fn rfc3339_utc(t: &[u8]) -> Option<i64> {
    if t.len() < 20
        || t[4] != b'-'
        || t[7] != b'-'
        || t[10] != b'T'
        || t[13] != b':'
        || t[16] != b':'
    {
        return None;
    }
    let year = digits(&t[0..4])?;
    let month = digits(&t[5..7])?;
    let day = digits(&t[8..10])?;
    let hour = digits(&t[11..13])?;
    let minute = digits(&t[14..16])?;
    let second = digits(&t[17..19])?;
    if year < 1
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if t[i] == b'.' {
        i += 1;
        let start = i;
        while i < t.len() && t[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 6 {
            return None;
        }
        micros = digits(&t[start..i])? * 10i64.pow((6 - n) as u32);
    }
    let zone = &t[i..];
    if zone != b"Z" && zone != b"+00:00" {
        return None;
    }
    let days = days_from_civil(year, month, day) - PG_EPOCH_DAYS_FROM_CIVIL;
    Some(days * MICROS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1_000_000 + micros)
}

fn chars(s: &[u8]) -> usize {
    s.iter().filter(|&&c| (c & 0xC0) != 0x80).count()
}

#[inline]
fn field(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as i32).to_be_bytes());
    out.extend_from_slice(data);
}

#[inline]
fn null_field(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

/// What one taken record contributes besides its row.
struct Taken {
    node: [u8; 16],
    ts: i64,
}

const KIND: u16 = 1;
const NODE_ID: u16 = 1 << 1;
const TS: u16 = 1 << 2;
const V: u16 = 1 << 3;
const EVENT_ID: u16 = 1 << 4;
const METRIC_TYPE: u16 = 1 << 5;
const METRIC_NAME: u16 = 1 << 6;
const METRIC_VALUE: u16 = 1 << 7;
const UNIT: u16 = 1 << 8;
const TAGS: u16 = 1 << 9;
const REQUIRED: u16 = KIND | NODE_ID | TS | METRIC_TYPE | METRIC_NAME | METRIC_VALUE;

/// One record's binary COPY row appended to `out`, or None (and `out` as it was).
fn metric_row(
    value: &[u8],
    limits: &Limits,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Option<Taken> {
    if value.contains(&b'\\') || std::str::from_utf8(value).is_err() {
        return None;
    }
    let mut p = Parser { b: value, i: 0 };
    let mut seen: u16 = 0;
    let mut node: Option<[u8; 16]> = None;
    let mut ts: i64 = 0;
    let mut version = limits.wire_version;
    let mut metric_type: &[u8] = b"";
    let mut metric_name: &[u8] = b"";
    let mut metric_value = 0f64;
    let mut unit: Option<&[u8]> = None;
    let mut tags = false;
    scratch.clear();
    p.ws();
    p.eat(b'{')?;
    p.ws();
    loop {
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        let bit = match key {
            b"kind" => {
                if p.string()? != b"metric" {
                    return None;
                }
                KIND
            }
            b"node_id" => {
                node = Some(uuid(p.string()?)?);
                NODE_ID
            }
            b"ts" => {
                ts = if p.peek()? == b'"' {
                    rfc3339_utc(p.string()?)?
                } else {
                    p.int()?
                        .checked_mul(1000)?
                        .checked_add(UNIX_EPOCH_PG_MICROS)?
                };
                TS
            }
            b"v" => {
                version = p.int()?;
                V
            }
            b"event_id" => {
                if !p.null() {
                    uuid(p.string()?)?;
                }
                EVENT_ID
            }
            b"metric_type" => {
                metric_type = p.string()?;
                let n = chars(metric_type);
                if !(1..=100).contains(&n) {
                    return None;
                }
                METRIC_TYPE
            }
            b"metric_name" => {
                metric_name = p.string()?;
                let n = chars(metric_name);
                if !(1..=255).contains(&n) {
                    return None;
                }
                METRIC_NAME
            }
            b"metric_value" => {
                metric_value = match p.number()? {
                    Number::Int(v) => v as f64,
                    Number::Float(f) => f,
                };
                if !metric_value.is_finite() {
                    return None;
                }
                METRIC_VALUE
            }
            b"unit" => {
                unit = if p.null() {
                    None
                } else {
                    let s = p.string()?;
                    if chars(s) > 50 {
                        return None;
                    }
                    Some(s)
                };
                UNIT
            }
            b"tags" => {
                scratch.clear();
                tags = if p.null() {
                    false
                } else {
                    p.tags(scratch)?;
                    true
                };
                TAGS
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        p.ws();
        match p.peek()? {
            b',' => {
                p.i += 1;
                p.ws();
            }
            b'}' => {
                p.i += 1;
                break;
            }
            _ => return None,
        }
    }
    p.ws();
    if p.i != value.len() || seen & REQUIRED != REQUIRED || version != limits.wire_version {
        return None;
    }
    if ts > limits.latest || ts < limits.oldest {
        return None;
    }
    let node = node?;
    out.extend_from_slice(&COLUMNS.to_be_bytes());
    field(out, &node);
    field(out, metric_type);
    field(out, metric_name);
    field(out, &metric_value.to_bits().to_be_bytes());
    match unit {
        Some(u) => field(out, u),
        None => null_field(out),
    }
    if tags {
        // jsonb's binary form: a version byte, then the text.
        out.extend_from_slice(&((scratch.len() + 1) as i32).to_be_bytes());
        out.push(1);
        out.extend_from_slice(scratch);
    } else {
        null_field(out);
    }
    field(out, &ts.to_be_bytes());
    Some(Taken { node, ts })
}

/// Encode the metric records among `values` (bytes or None) as binary COPY rows of
/// `network.metrics`.
///
/// Returns `(rows, refused, nodes, taken, first_ts, size)`: the rows' bytes (no COPY header or
/// trailer), the indexes of the values it did not take, in order, the distinct node ids of the
/// taken rows as 16 bytes each, how many it took, the event time of the first one taken
/// (PostgreSQL microseconds) or None, and the length of all the values together.
type ChunkRows<'py> = (
    Bound<'py, PyBytes>,
    Vec<usize>,
    Vec<Bound<'py, PyBytes>>,
    usize,
    Option<i64>,
    usize,
);

#[pyfunction]
#[pyo3(signature = (values, latest, oldest, max_bytes, wire_version))]
fn metric_rows<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    latest: i64,
    oldest: i64,
    max_bytes: usize,
    wire_version: i64,
) -> PyResult<ChunkRows<'py>> {
    let limits = Limits {
        latest,
        oldest,
        wire_version,
    };
    let mut out: Vec<u8> = Vec::with_capacity(values.len() * 160);
    let mut scratch: Vec<u8> = Vec::with_capacity(256);
    let mut refused: Vec<usize> = Vec::new();
    let mut nodes: HashSet<[u8; 16]> = HashSet::new();
    let mut node_list: Vec<[u8; 16]> = Vec::new();
    let mut taken = 0usize;
    let mut first_ts: Option<i64> = None;
    let mut size = 0usize;
    for (index, item) in values.iter().enumerate() {
        let Ok(bytes) = item.downcast::<PyBytes>() else {
            refused.push(index);
            continue;
        };
        let value = bytes.as_bytes();
        size += value.len();
        if value.is_empty() || value.len() > max_bytes {
            refused.push(index);
            continue;
        }
        let mark = out.len();
        match metric_row(value, &limits, &mut out, &mut scratch) {
            Some(t) => {
                taken += 1;
                if first_ts.is_none() {
                    first_ts = Some(t.ts);
                }
                if nodes.insert(t.node) {
                    node_list.push(t.node);
                }
            }
            None => {
                out.truncate(mark);
                refused.push(index);
            }
        }
    }
    let node_bytes = node_list
        .iter()
        .map(|n| PyBytes::new_bound(py, n))
        .collect();
    Ok((
        PyBytes::new_bound(py, &out),
        refused,
        node_bytes,
        taken,
        first_ts,
        size,
    ))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(metric_rows, m)?)?;
    Ok(())
}
