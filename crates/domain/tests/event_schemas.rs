//! schemas/events/ holds one JSON Schema per event type and version, generated from the types.
//! This test regenerates them and fails when the checked-in files differ, are missing or are
//! stale; `UPDATE_SCHEMAS=1 cargo test -p switchboard-domain --test event_schemas` rewrites them.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use switchboard_domain::Event;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/events")
}

fn generated() -> BTreeMap<String, String> {
    Event::schemas()
        .into_iter()
        .map(|(event_type, version, schema)| {
            let text = serde_json::to_string_pretty(&schema).expect("schemas serialize") + "\n";
            (format!("{event_type}.v{version}.json"), text)
        })
        .collect()
}

fn checked_in() -> BTreeMap<String, String> {
    let Ok(entries) = fs::read_dir(schema_dir()) else {
        return BTreeMap::new();
    };
    entries
        .map(|entry| entry.expect("readable schemas/events").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                fs::read_to_string(&path).expect("readable schema file"),
            )
        })
        .collect()
}

#[test]
fn checked_in_event_schemas_are_current() {
    let generated = generated();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        fs::create_dir_all(schema_dir()).unwrap();
        for stale in checked_in()
            .keys()
            .filter(|name| !generated.contains_key(*name))
        {
            fs::remove_file(schema_dir().join(stale)).unwrap();
        }
        for (name, text) in &generated {
            fs::write(schema_dir().join(name), text).unwrap();
        }
        return;
    }
    let checked_in = checked_in();
    let missing: Vec<_> = generated
        .keys()
        .filter(|n| !checked_in.contains_key(*n))
        .collect();
    let stale: Vec<_> = checked_in
        .keys()
        .filter(|n| !generated.contains_key(*n))
        .collect();
    let changed: Vec<_> = generated
        .iter()
        .filter(|(name, text)| {
            checked_in
                .get(*name)
                .is_some_and(|current| current != *text)
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty() && changed.is_empty(),
        "schemas/events is out of date (missing {missing:?}, stale {stale:?}, changed {changed:?}); \
         run UPDATE_SCHEMAS=1 cargo test -p switchboard-domain --test event_schemas and review the diff"
    );
}

#[test]
fn every_schema_names_its_event_and_describes_an_object() {
    for (event_type, _, schema) in Event::schemas() {
        let json = schema.as_value();
        assert_eq!(json["title"], event_type);
        assert_eq!(json["type"], "object", "{event_type}");
        assert!(
            json["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|f| f == "occurred_at")),
            "{event_type} must require occurred_at"
        );
    }
}
