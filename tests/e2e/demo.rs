//! `sfetl demo`, README's first command, on a fresh folder: exact figures at each step, each
//! explained by the others.

use crate::common::run_blocking;

#[test]
fn demo_runs_the_whole_pipeline_and_reports_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_blocking(&["demo", "--dir", dir.path().join("demo").to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("18 objects: Account, AccountFeed, AccountHistory, AccountShare, Attachment, CaseStatus, Contact, ContentDocumentLink, EntityDefinition, Lead, Opportunity, RecentlyViewed, Score_Reading__b, Score__c, Task, TaskStatus, User, UserRecordAccess; mapped streams: person"),
        "{text}"
    );
    // Windows sized by rows: ten years of rows are one window per source object.
    assert!(
        text.contains(
            "rows: account 1,000, person 4,387 (1,387 Leads not converted + 3,000 Contacts), in 3 STATE checkpoints"
        ),
        "{text}"
    );
    // Every figure is explained by the others: 2 of the 5 deleted Leads were converted, so the
    // mapping never read them.
    assert!(
        text.contains("25 Contacts edited and 5 Leads deleted through the simulator's test-control API; 2 of the deleted Leads (00Q5g0000000000EAA, 00Q5g000000006SEAQ) had been converted, so people.yaml's soql_where (IsConverted = false) never read them: person loses 3 Leads, not 5; Lead 00Q5g00000000WFEAY converted into Contact 0035g00000000mOAAQ (the Lead changes, and people.yaml's soql_where no longer selects it) ("),
        "{text}"
    );
    assert!(
        text.contains("rows: account 1, person 36 = 25 edited Contacts + 3 deleted Leads as their recycle-bin version (queryAll with the mapping's filter) + 5 rows from the deleted endpoint, one per deleted Lead (it cannot apply soql_where, so the 2 converted Leads come too) + the conversion's new Contact twice (read as new, and again under its new Account, whose changes the mapping's Account.Name follows) + the converted Lead as a deletion (a query of the window's rows no longer matching soql_where); account: the conversion's new Account ("),
        "{text}"
    );
    assert!(
        text.contains("| Contact       | 3001   |\n   | Lead          | 1383   |\n   +---------------+--------+\n   latest version of each person: 3,001 Contacts (one the conversion's), and 1,383 Leads = 1,387 read first - 3 deleted - 1 converted ("),
        "{text}"
    );
    assert!(
        text.contains("| 4423 | 4390   |\n   +------+--------+\n   every version of every row: 4,423 = 4,387 from the first read + 36 from the second; 4,390 people = the 4,387 read first + the 2 converted Leads known only from their deletion rows + the Contact a conversion created ("),
        "{text}"
    );
    // The same streams as Delta tables: one current version of each person, as Parquet's view.
    assert!(
        text.contains("| Contact       | 3001   |\n   | Lead          | 1383   |\n   +---------------+--------+\n   one table per stream under "),
        "{text}"
    );
    assert!(
        text.contains("(4 commits to person: its creation and one MERGE on the mapping's primary key per checkpoint, each holding the stream's STATE), no deleted row and one version of each person: the same answer as the Parquet export's latest view;"),
        "{text}"
    );
    let log = std::fs::read_dir(dir.path().join("demo/delta/person/_delta_log"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(log, 4);
    // The Parquet scoring command prints nothing; the table shown is under its own command.
    let scoring = text
        .lines()
        .position(|l| l.contains("--format parquet --out"))
        .unwrap();
    let next: Vec<&str> = text.lines().skip(scoring + 1).take(3).collect();
    assert_eq!(
        next[0],
        "   (it prints nothing; what it wrote, summarised:)"
    );
    assert!(
        next[1].starts_with("   $ sfetl query --path ") && next[1].contains("count(*) AS scored"),
        "{text}"
    );
    // Scored with SQL, written back through one Bulk ingest job per object, read back by REST.
    assert!(
        text.contains("| Contact       | 3001   | 30.0      | 100.0     |\n   | Lead          | 1383   | 40.0      | 80.0      |"),
        "{text}"
    );
    assert!(
        text.contains("person_scores/routes[0] (update Lead): 1383 applied, 0 rejected\n     person_scores/routes[1] (update Contact): 3001 applied, 0 rejected\n"),
        "{text}"
    );
    assert!(
        // No describe: the write-back's checks reuse the ones the reads fetched moments before.
        text.contains("10 API calls: 10 Bulk API 2.0 ingest (create, upload, close and polls of one job per object) ("),
        "{text}"
    );
    assert!(
        text.contains("   Lead     00Q5g0000000002EAA Zoë Ångström-Müller P…          796.93       80  has email, known company, open lead\n"),
        "{text}"
    );
    assert!(
        text.contains("   Contact  0035g0000000000AAA Olu Adeyemi                     548.66       60  known company, contact\n"),
        "{text}"
    );
    assert!(text.contains("5 records read back"), "{text}");
    assert!(!dir.path().join("demo/rejects").exists(), "no row rejected");
    let syncs = std::fs::read_dir(dir.path().join("demo/export/person"))
        .unwrap()
        .count();
    assert_eq!(syncs, 2, "one sync folder per read");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("demo/config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Run again in the same folder: the first run's outputs are replaced, so the figures are a
    // first run's again rather than adding to it.
    let again = run_blocking(&["demo", "--dir", dir.path().join("demo").to_str().unwrap()]);
    let text = String::from_utf8(again.stdout).unwrap();
    assert!(again.status.success(), "{text}");
    assert!(
        text.contains(
            "| 4423 | 4390   |\n   +------+--------+\n   every version of every row: 4,423 = 4,387"
        ),
        "{text}"
    );
    let syncs = std::fs::read_dir(dir.path().join("demo/export/person"))
        .unwrap()
        .count();
    assert_eq!(syncs, 2, "the second run's two syncs only");
}

#[test]
fn a_demo_refuses_a_folder_holding_other_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let out = run_blocking(&["demo", "--dir", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already holds files that an earlier `sfetl demo` did not write; give --dir a new or empty folder"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_demo_folder_that_cannot_be_made_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under = file.join("demo");
    let out = run_blocking(&["demo", "--dir", under.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "demo: cannot use {} as the demo's folder (",
            under.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("stdout"), "{stderr}");
}
