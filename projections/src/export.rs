//! `switchboard export`: a read-model table as JSON lines or CSV, streamed row by row.

use std::io::Write;
use std::str::FromStr;

use crate::ProjectionError;
use crate::db::{ProjectionName, open_reader};
use crate::query::ReadModels;
use crate::sql::Cell;

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

/// Writes the main table of `projection` to `out`, in the order the rows were created (the
/// anomalies in the order they were recorded); returns the number of rows written.
pub fn export(
    read_models: &ReadModels,
    projection: ProjectionName,
    format: ExportFormat,
    mut out: impl Write,
) -> Result<u64, ProjectionError> {
    let (table, order) = match projection {
        ProjectionName::Calls => ("calls", "seq"),
        ProjectionName::Appointments => ("appointments", "seq"),
        ProjectionName::Customers => ("customers", "seq, customer_id"),
        ProjectionName::Tenants => ("tenants", "seq"),
        ProjectionName::Anomalies => ("anomalies", "anomaly_id"),
    };
    // A connection of its own: a long export holds one read snapshot from start to end.
    let conn = open_reader(read_models.at())?;
    let mut statement = conn.prepare_cached(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
    let columns = statement.column_names();
    if format == ExportFormat::Csv {
        let header: Vec<String> = columns.iter().map(|c| csv_field(c)).collect();
        writeln!(out, "{}", header.join(",")).map_err(ProjectionError::Export)?;
    }
    let mut written = 0u64;
    // Writing fails with an I/O error the row callback cannot return as a SQL one: it is kept
    // here and the stream stopped.
    let mut failed = None;
    statement.stream_rows((), |row| {
        let line = match format {
            ExportFormat::Jsonl => {
                let mut object = serde_json::Map::with_capacity(columns.len());
                for (index, column) in columns.iter().enumerate() {
                    let value =
                        json_value(row.cell(index)?, JSON_COLUMNS.contains(&column.as_str()));
                    object.insert(column.clone(), value);
                }
                serde_json::Value::Object(object).to_string()
            }
            ExportFormat::Csv => {
                let mut fields = Vec::with_capacity(columns.len());
                for index in 0..columns.len() {
                    fields.push(match row.cell(index)? {
                        Cell::Null => String::new(),
                        Cell::Int(i) => i.to_string(),
                        Cell::Real(f) => f.to_string(),
                        Cell::Text(t) => csv_field(t),
                        Cell::Blob(b) => csv_field(&String::from_utf8_lossy(b)),
                    });
                }
                fields.join(",")
            }
        };
        if let Err(error) = writeln!(out, "{line}") {
            failed = Some(error);
            return Ok(false);
        }
        written += 1;
        Ok(true)
    })?;
    if let Some(error) = failed {
        return Err(ProjectionError::Export(error));
    }
    out.flush().map_err(ProjectionError::Export)?;
    Ok(written)
}

fn json_value(value: Cell<'_>, nested_json: bool) -> serde_json::Value {
    let text = match value {
        Cell::Null => return serde_json::Value::Null,
        Cell::Int(i) => return i.into(),
        Cell::Real(f) => return f.into(),
        Cell::Text(t) => t.to_owned(),
        Cell::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    };
    if nested_json && let Ok(parsed) = serde_json::from_str(&text) {
        return parsed;
    }
    serde_json::Value::String(text)
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
