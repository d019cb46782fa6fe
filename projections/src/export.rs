//! `switchboard export`: a read-model table as JSON lines or CSV, streamed row by row.

use std::io::Write;
use std::str::FromStr;

use rusqlite::types::ValueRef;

use crate::ProjectionError;
use crate::db::{ProjectionName, open_reader};
use crate::query::ReadModels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per row; JSON-text columns (`history`, `opening_hours`) nested as JSON.
    Jsonl,
    /// RFC 4180: a header line, then one line per row; NULL is an empty field.
    Csv,
}

impl FromStr for ExportFormat {
    type Err = ProjectionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(ProjectionError::UnknownFormat(other.to_owned())),
        }
    }
}

/// Columns that hold JSON text in the tables.
const JSON_COLUMNS: &[&str] = &["history", "opening_hours"];

/// Writes the main table of `projection` (calls, appointments or tenants) to `out`, in the
/// order the rows were created; returns the number of rows written.
pub fn export(
    read_models: &ReadModels,
    projection: ProjectionName,
    format: ExportFormat,
    mut out: impl Write,
) -> Result<u64, ProjectionError> {
    let table = match projection {
        ProjectionName::Calls => "calls",
        ProjectionName::Appointments => "appointments",
        ProjectionName::Tenants => "tenants",
        other => return Err(ProjectionError::NotExportable(other.to_string())),
    };
    // A connection of its own: a long export holds one read snapshot from start to end.
    let conn = open_reader(read_models.path())?;
    let mut statement = conn.prepare(&format!("SELECT * FROM {table} ORDER BY seq"))?;
    let columns: Vec<String> = statement
        .column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    if format == ExportFormat::Csv {
        let header: Vec<String> = columns.iter().map(|c| csv_field(c)).collect();
        writeln!(out, "{}", header.join(",")).map_err(ProjectionError::Export)?;
    }
    let mut rows = statement.query([])?;
    let mut written = 0u64;
    while let Some(row) = rows.next()? {
        match format {
            ExportFormat::Jsonl => {
                let mut object = serde_json::Map::with_capacity(columns.len());
                for (index, column) in columns.iter().enumerate() {
                    let value =
                        json_value(row.get_ref(index)?, JSON_COLUMNS.contains(&column.as_str()));
                    object.insert(column.clone(), value);
                }
                serde_json::to_writer(&mut out, &object)?;
                out.write_all(b"\n").map_err(ProjectionError::Export)?;
            }
            ExportFormat::Csv => {
                let mut fields = Vec::with_capacity(columns.len());
                for index in 0..columns.len() {
                    fields.push(match row.get_ref(index)? {
                        ValueRef::Null => String::new(),
                        ValueRef::Integer(i) => i.to_string(),
                        ValueRef::Real(f) => f.to_string(),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            csv_field(&String::from_utf8_lossy(t))
                        }
                    });
                }
                writeln!(out, "{}", fields.join(",")).map_err(ProjectionError::Export)?;
            }
        }
        written += 1;
    }
    out.flush().map_err(ProjectionError::Export)?;
    Ok(written)
}

fn json_value(value: ValueRef<'_>, nested_json: bool) -> serde_json::Value {
    match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => f.into(),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let text = String::from_utf8_lossy(t);
            if nested_json && let Ok(parsed) = serde_json::from_str(&text) {
                return parsed;
            }
            serde_json::Value::String(text.into_owned())
        }
    }
}

/// Quotes a field when it holds a separator, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("csv".parse::<ExportFormat>().unwrap(), ExportFormat::Csv);
        assert!(matches!(
            "xml".parse::<ExportFormat>(),
            Err(ProjectionError::UnknownFormat(_))
        ));
    }
}
