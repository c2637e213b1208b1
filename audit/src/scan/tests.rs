use super::*;
use crate::body::LeafBody;
use crate::bytes::{find_byte, find_special};
use crate::canon::canonical_json;
use crate::export::{ExportLine, PayloadRecord};
use proptest::prelude::*;
use serde_json::{Value, json};

fn naive_special(s: &[u8], i: usize) -> usize {
    (i..s.len())
        .find(|&j| s[j] == b'"' || s[j] == b'\\' || s[j] < 0x20)
        .unwrap_or(s.len())
}

#[test]
fn byte_searches_match_the_obvious_loop() {
    let samples: [&[u8]; 6] = [
        b"",
        b"abc",
        b"0123456789abcdef\"",
        b"\x7f\x80\xff\x1f\x20 ",
        "é\\😀\"x\u{1}".as_bytes(),
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\naaaa",
    ];
    for s in samples {
        for i in 0..=s.len() {
            assert_eq!(find_special(s, i), naive_special(s, i), "{s:?} from {i}");
            let nl = (i..s.len()).find(|&j| s[j] == b'\n').unwrap_or(s.len());
            assert_eq!(find_byte(s, i, b'\n'), nl);
        }
    }
}

#[test]
fn canonical_json_is_recognised() {
    for text in [
        "{}",
        "[]",
        "0",
        "-1",
        "9007199254740991",
        "\"a\\\"b\\\\c\\n\\u001f\\u0000\"",
        r#"{"":false,"a":"x","b":[1,{"a":true,"z":null}]}"#,
        "{\"\u{1f600}\":2,\"\u{e000}\":1}",
    ] {
        assert!(is_canonical_json(text), "{text}");
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(canonical_json(&v).unwrap(), text);
    }
    for text in [
        "{ }",
        " 1",
        "1 ",
        "-0",
        "01",
        "1.0",
        "1e3",
        "9007199254740992",
        "-9007199254740992",
        "\"\\/\"",
        "\"\\u0041\"",
        "\"\\u001F\"",
        "\"\\u000a\"",
        "\"\u{1}\"",
        r#"{"b":1,"a":2}"#,
        r#"{"a":1,"a":2}"#,
        "{\"\u{e000}\":1,\"\u{1f600}\":2}",
        r#"{"a\u0062":1}"#,
        // Canonical, but member names with escapes are left to the general path.
        r#"{"\"":""}"#,
        "[1,]",
        "{\"a\":1,}",
        "tru",
        "[1]]",
        "",
    ] {
        assert!(!is_canonical_json(text), "{text}");
    }
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    assert!(!is_canonical_json(&deep));
    let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
    assert!(is_canonical_json(&ok));
}

fn body() -> LeafBody {
    LeafBody {
        v: BODY_VERSION,
        origin: "accord.example/log".into(),
        seq: 7,
        prev: "ab".repeat(32),
        at: -1_763_884_800_123_456,
        actor: "user:ada".into(),
        kind: "consent.recorded".into(),
        entity: "consent:s1/marketing.email/any".into(),
        subject_ref: Some("cd".repeat(32)),
        payload_commit: "ef".repeat(32),
        request_id: None,
    }
}

fn fields(b: &LeafBody) -> BodyRef<'_> {
    BodyRef {
        seq: b.seq,
        origin: b.origin.as_bytes(),
        kind: b.kind.as_bytes(),
        prev: crate::hash::from_hex(&b.prev).unwrap(),
        subject_ref: b
            .subject_ref
            .as_deref()
            .map(|h| crate::hash::from_hex(h).unwrap()),
        payload_commit: crate::hash::from_hex(&b.payload_commit).unwrap(),
    }
}

#[test]
fn body_text_constants_agree() {
    for (plain, escaped) in BODY_TEXT.iter().zip(ESCAPED_BODY_TEXT) {
        let plain = std::str::from_utf8(plain).unwrap();
        assert_eq!(
            plain.replace('"', "\\\""),
            std::str::from_utf8(escaped).unwrap()
        );
    }
    let b = body();
    let mut text = String::new();
    for (i, t) in BODY_TEXT.iter().enumerate() {
        text.push_str(std::str::from_utf8(t).unwrap());
        text.push_str(match i {
            0 => "user:ada",
            1 => "-1763884800123456",
            2 => "consent:s1/marketing.email/any",
            3 => "consent.recorded",
            4 => "accord.example/log",
            5 => "efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef",
            6 => "abababababababababababababababababababababababababababababababab",
            7 => "null",
            8 => "7",
            9 => "\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\"",
            10 => "1",
            _ => "",
        });
    }
    assert_eq!(text, b.encode());
}

#[test]
fn canonical_body_agrees_with_parse() {
    let b = body();
    let text = b.encode();
    assert_eq!(canonical_body(&text), Some(fields(&b)));
    let mut other = b.clone();
    other.subject_ref = None;
    other.request_id = Some("r".into());
    other.at = 0;
    assert_eq!(canonical_body(&other.encode()), Some(fields(&other)));
    // Everything the fast reader refuses, including valid bodies with escapes.
    let mut quoted = b.clone();
    quoted.actor = "a \"b\"".into();
    assert!(LeafBody::parse(&quoted.encode()).is_ok());
    assert!(canonical_body(&quoted.encode()).is_none());
    for bad in [
        text.replacen(":", ": ", 1),
        text.replacen("\"v\":1", "\"v\":2", 1),
        text.replacen("\"seq\":7", "\"seq\":07", 1),
        text.replacen("\"seq\":7", "\"seq\":9007199254740992", 1),
        text.replacen("ab", "AB", 1),
        text.replacen("ef", "e", 1),
        text.replacen(&"cd".repeat(32), "\"zz\"", 1),
        format!("{text} "),
        text.replacen("\"request_id\":null,", "", 1),
    ] {
        assert!(canonical_body(&bad).is_none(), "{bad}");
    }
}

fn line_of(l: &ExportLine) -> String {
    format!("{}\n", serde_json::to_string(l).unwrap())
}

/// The body an entry line read by [`export_line`] holds.
fn body_of<'a>(body: &FastBody<'_>, out: &'a Decoded) -> &'a [u8] {
    match *body {
        FastBody::Canonical { .. } => out.body(),
        FastBody::Text { start } => &out.text.as_bytes()[start..],
    }
}

#[test]
fn export_lines_read_as_serde_reads_them() {
    let b = body();
    let entry = ExportLine::Entry {
        seq: 7,
        body: b.encode(),
        leaf_hash: "12".repeat(32),
        payload: PayloadRecord::Open {
            salt: "34".repeat(32),
            data: json!({"b": [1, -2, "x\ny\"z"], "a": {"n": null}}),
        },
    };
    let text = line_of(&entry);
    let mut out = Decoded::default();
    let Some((
        FastLine::Entry {
            seq,
            body,
            leaf_hash,
            payload: FastPayload::Open { salt, data },
        },
        end,
    )) = export_line(text.as_bytes(), 0, &mut out)
    else {
        panic!("{text}")
    };
    assert_eq!(end, text.len());
    assert_eq!(seq, 7);
    assert_eq!(body, FastBody::Canonical { fields: fields(&b) });
    assert_eq!(body_of(&body, &out), b.encode().as_bytes());
    assert_eq!(leaf_hash, [0x12; 32]);
    assert_eq!(salt, [0x34; 32]);
    assert_eq!(data, br#"{"a":{"n":null},"b":[1,-2,"x\ny\"z"]}"#);
    // Without its newline (a last line), still read; followed by more lines, only the first.
    let trimmed = text.trim_end();
    let read = export_line(trimmed.as_bytes(), 0, &mut Decoded::default());
    assert_eq!(read.map(|r| r.1), Some(trimmed.len()));
    let two = format!("{text}{text}");
    let read = export_line(two.as_bytes(), text.len(), &mut Decoded::default());
    assert_eq!(read.map(|r| r.1), Some(two.len()));

    // A body with escapes of its own, or not canonical, is decoded for the general path.
    let mut quoted = b.clone();
    quoted.actor = "a \"b\"\\".into();
    for body_text in [quoted.encode(), b.encode().replacen(",", ", ", 1)] {
        let line = ExportLine::Entry {
            seq: 7,
            body: body_text.clone(),
            leaf_hash: "12".repeat(32),
            payload: PayloadRecord::Redacted { redacted_by: 9 },
        };
        let mut out = Decoded::default();
        let line = line_of(&line);
        let Some((FastLine::Entry { body, .. }, _)) = export_line(line.as_bytes(), 0, &mut out)
        else {
            panic!("{body_text}")
        };
        assert!(matches!(body, FastBody::Text { .. }));
        assert_eq!(body_of(&body, &out), body_text.as_bytes());
    }

    let redacted = ExportLine::Entry {
        seq: 3,
        body: b.encode(),
        leaf_hash: "12".repeat(32),
        payload: PayloadRecord::Redacted { redacted_by: 10 },
    };
    assert!(matches!(
        export_line(line_of(&redacted).as_bytes(), 0, &mut Decoded::default()),
        Some((
            FastLine::Entry {
                seq: 3,
                payload: FastPayload::Redacted(10),
                ..
            },
            _
        ))
    ));
    let note = "o\n5\nAAAA\n\n\u{2014} o abc=\n";
    let cp = ExportLine::Checkpoint { note: note.into() };
    let mut out = Decoded::default();
    let cp_line = line_of(&cp);
    assert_eq!(
        export_line(cp_line.as_bytes(), 0, &mut out),
        Some((FastLine::Checkpoint { note_start: 0 }, cp_line.len()))
    );
    assert_eq!(out.text, note);

    // Lines the fast reader leaves to serde.
    for other in [
        text.replacen("\"seq\":7,", "\"seq\":7, ", 1),
        text.replacen("{\"type\":\"entry\",", "{\"type\":\"entry\",\"x\":1,", 1),
        text.replacen("\n", "\r\n", 1),
        text.replacen("\"n\":null", "\"n\":1.5", 1),
        text.replacen("\"n\":null", "\"n\":null,\"m\":1", 1),
        text.replacen("\\n", "\\u000a", 1),
        format!("{}\n", text.trim_end().replacen("}}", "},\"extra\":1}", 1)),
        line_of(&ExportLine::Header {
            format: "f".into(),
            origin: "o".into(),
            verifier_key: "k".into(),
            checkpoint: "c".into(),
            entries: 1,
        }),
        "{\"type\":\"entry\",\"seq\":1}\n".into(),
        "\n".into(),
    ] {
        assert!(
            export_line(other.as_bytes(), 0, &mut Decoded::default()).is_none(),
            "{other}"
        );
    }
}

#[test]
fn integers_read_as_written() {
    for n in [
        0u64,
        7,
        12_345_678,
        123_456_789,
        1_763_884_800_003_750,
        9_007_199_254_740_991,
        u64::MAX,
    ] {
        for tail in ["", ",", "}", "x1234567"] {
            let text = format!("{n}{tail}");
            let mut c = Cursor::new(text.as_bytes());
            assert_eq!(c.uint(), Some(n), "{text}");
            assert_eq!(&text[c.pos..], tail);
        }
    }
    let big = format!("{}0", u64::MAX);
    assert_eq!(Cursor::new(big.as_bytes()).uint(), None);
    for (word, want) in [
        (*b"12345678", Some(12_345_678)),
        (*b"00000000", Some(0)),
        (*b"99999999", Some(99_999_999)),
        (*b"1234567:", None),
        (*b"/2345678", None),
        (*b"1234\xff678", None),
        (*b"12345\x06789"[..8].first_chunk().unwrap(), None),
    ] {
        assert_eq!(eight_digits(u64::from_le_bytes(word)), want, "{word:?}");
    }
}

#[test]
fn utf16_order() {
    for (a, b) in [
        ("", "a"),
        ("a", "b"),
        ("ab", "b"),
        ("a", "ab"),
        ("\u{7f}", "\u{80}"),
        ("\u{1f600}", "\u{e000}"),
        ("x\u{1f600}", "x\u{ffff}"),
        ("\u{e000}", "\u{e001}"),
        ("é", "\u{1f600}"),
    ] {
        assert_eq!(
            utf16_cmp(a, b),
            a.encode_utf16().cmp(b.encode_utf16()),
            "{a:?} {b:?}"
        );
        assert_eq!(
            utf16_cmp(b, a),
            b.encode_utf16().cmp(a.encode_utf16()),
            "{b:?} {a:?}"
        );
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 54)..(1i64 << 54)).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-c\"\\\\\u{0}-\u{1f}\u{7f}\u{e000}\u{1f600}é/]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c\"\u{1}\u{e000}\u{1f600}]{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Member names the fast reader leaves to the general path (they need escapes).
fn escaped_names(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().any(escaped_names),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains(|c: char| c == '"' || c < ' ') || escaped_names(v)),
        _ => false,
    }
}

fn leaf_body() -> impl Strategy<Value = LeafBody> {
    let text = || {
        prop_oneof![
            6 => "[a-z:/. é\u{2028}\u{1f600}]{0,8}",
            1 => "[a-z:/. \"\\\u{0}-\u{1f}é\u{2028}\u{1f600}]{0,8}",
        ]
    };
    let hex = prop_oneof![
        4 => "[0-9a-f]{64}",
        1 => "[0-9a-fA-G]{63,65}",
    ];
    (
        (
            prop_oneof![5 => Just(1u32), 1 => 0u32..3],
            text(),
            0u64..1 << 54,
            hex.clone(),
            prop_oneof![4 => -(1i64 << 53) + 1..1i64 << 53, 1 => any::<i64>()],
        ),
        (text(), text(), text(), prop::option::of(hex.clone()), hex),
        prop::option::of(text()),
    )
        .prop_map(
            |(
                (v, origin, seq, prev, at),
                (actor, kind, entity, subject_ref, commit),
                request_id,
            )| {
                LeafBody {
                    v,
                    origin,
                    seq,
                    prev,
                    at,
                    actor,
                    kind,
                    entity,
                    subject_ref,
                    payload_commit: commit,
                    request_id,
                }
            },
        )
}

proptest! {
    /// The canonical form of any value is recognised (unless a member name needs escapes);
    /// and whatever text is recognised as canonical really is the canonical form of what it
    /// parses to.
    #[test]
    fn fast_canonical_check_is_exact(v in json_value(), spaced in any::<bool>()) {
        if let Ok(c) = canonical_json(&v) {
            prop_assert_eq!(is_canonical_json(&c), !escaped_names(&v), "{}", c);
        }
        for text in [
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string_pretty(&v).unwrap(),
            if spaced { format!(" {}", serde_json::to_string(&v).unwrap()) } else { "[1,2]".into() },
        ] {
            if is_canonical_json(&text) {
                let parsed: Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(canonical_json(&parsed).unwrap(), text);
            }
        }
    }

    /// A body the fast readers accept (plain or inside an export line) is one `parse`
    /// accepts, with the same fields, and the bytes read are the body's.
    #[test]
    fn fast_body_readers_agree_with_parse(b in leaf_body(), tweak in 0usize..4) {
        let mut text = b.encode();
        match tweak {
            1 => text = text.replacen(",", ", ", 1),
            2 => text = text.replacen("\"v\":", "\"v\":0", 1),
            3 => text.push(' '),
            _ => {}
        }
        let parsed = LeafBody::parse(&text);
        if let Some(f) = canonical_body(&text) {
            let p = parsed.as_ref().unwrap();
            prop_assert_eq!(f, fields(p));
        }
        let line = line_of(&ExportLine::Entry {
            seq: b.seq,
            body: text.clone(),
            leaf_hash: "ab".repeat(32),
            payload: PayloadRecord::Redacted { redacted_by: 1 },
        });
        let mut out = Decoded::default();
        let read = export_line(line.as_bytes(), 0, &mut out);
        prop_assert!(read.is_some(), "{}", line);
        let Some((FastLine::Entry { body, .. }, _)) = read else { unreachable!() };
        prop_assert_eq!(body_of(&body, &out), text.as_bytes());
        if let FastBody::Canonical { fields: f, .. } = body {
            let p = parsed.as_ref().unwrap();
            prop_assert_eq!(f, fields(p));
            prop_assert_eq!(Some(f), canonical_body(&text));
        }
    }

    /// An export line the fast reader accepts holds exactly what serde reads from it.
    #[test]
    fn fast_line_reader_is_exact(v in json_value(), seq in 0u64..1 << 60, body in "[a-z\"\\\\\n\t/é]{0,12}") {
        let line = ExportLine::Entry {
            seq,
            body: body.clone(),
            leaf_hash: "ab".repeat(32),
            payload: PayloadRecord::Open { salt: "cd".repeat(32), data: v.clone() },
        };
        let text = line_of(&line);
        let mut out = Decoded::default();
        match export_line(text.as_bytes(), 0, &mut out) {
            Some((FastLine::Entry { seq: s, body: b, leaf_hash, payload: FastPayload::Open { salt, data } }, end)) => {
                prop_assert_eq!(end, text.len());
                prop_assert_eq!(s, seq);
                prop_assert_eq!(body_of(&b, &out), body.as_bytes());
                prop_assert_eq!(leaf_hash, [0xab; 32]);
                prop_assert_eq!(salt, [0xcd; 32]);
                prop_assert_eq!(Some(data.to_vec()), canonical_json(&v).ok().map(String::into_bytes));
            }
            Some(other) => prop_assert!(false, "{:?}", other),
            None => prop_assert!(
                escaped_names(&v)
                    || !canonical_json(&v).is_ok_and(|c| serde_json::to_string(&v).unwrap() == c)
            ),
        }
    }
}
