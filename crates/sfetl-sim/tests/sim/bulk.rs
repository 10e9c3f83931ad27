//! Bulk API 2.0 against the simulator over real HTTP: query job lifecycle, CSV results paging,
//! gzip, refusals, abort / delete, ingest with per-row results, and injected job failures.

use std::io::Read as _;

use reqwest::Method;
use serde_json::{Value, json};

use crate::org::{Org, error_code};

async fn create_query(org: &Org, soql: &str) -> (u16, Value) {
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "query", "query": soql}),
        )
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn poll_to_complete(org: &Org, kind: &str, id: &str) -> Value {
    let mut states = Vec::new();
    for _ in 0..5 {
        let (s, info) = org.get_json(&format!("jobs/{kind}/{id}")).await;
        assert_eq!(s, 200);
        let st = info["state"].as_str().unwrap().to_string();
        states.push(st.clone());
        if matches!(st.as_str(), "JobComplete" | "Failed" | "Aborted") {
            return info;
        }
    }
    panic!("job never finished: {states:?}");
}

/// A results body goes out in HTTP chunks of at most 16 KB, gzip or not, as a client reads a
/// real org's over HTTP/2 or a slow link; joined, they are the whole page.
#[tokio::test]
async fn results_arrive_in_pieces_of_at_most_16_kb() {
    let org = Org::start(1000).await; // 3,000 Contacts
    let (s, job) = create_query(&org, "SELECT Id, Name, Description, Email FROM Contact").await;
    assert_eq!(s, 200, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(
        poll_to_complete(&org, "query", &id).await["state"],
        "JobComplete"
    );
    let mut bodies = Vec::new();
    for gzip in [false, true] {
        let mut req = org
            .raw
            .get(org.data(&format!("jobs/query/{id}/results")))
            .bearer_auth(&org.token);
        if gzip {
            req = req.header("Accept-Encoding", "gzip");
        }
        let mut r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["transfer-encoding"], "chunked");
        let mut pieces = Vec::new();
        while let Some(piece) = r.chunk().await.unwrap() {
            pieces.push(piece);
        }
        let largest = pieces.iter().map(|p| p.len()).max().unwrap();
        assert!(
            largest <= 16 << 10,
            "gzip {gzip}: a piece of {largest} bytes"
        );
        let body = pieces.concat();
        assert!(
            pieces.len() >= body.len() / (16 << 10),
            "gzip {gzip}: {} pieces",
            pieces.len()
        );
        bodies.push(if gzip {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut text)
                .unwrap();
            text
        } else {
            body
        });
    }
    assert!(bodies[0].len() > 200_000, "{} bytes", bodies[0].len());
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(
        csv::Reader::from_reader(&bodies[0][..]).records().count(),
        3000
    );
}

#[tokio::test]
async fn query_job_lifecycle_results_and_paging() {
    let org = Org::start(40).await; // 120 Contacts
    let (s, job) = create_query(&org, "SELECT Id, Name, Description, Account.Name, CreatedDate, Score__c, IsEmailBounced FROM Contact").await;
    assert_eq!(s, 200, "{job}");
    let want_keys = [
        "id",
        "operation",
        "object",
        "createdById",
        "createdDate",
        "systemModstamp",
        "state",
        "concurrencyMode",
        "contentType",
        "apiVersion",
        "lineEnding",
        "columnDelimiter",
    ];
    let got: Vec<&str> = job
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, want_keys);
    assert_eq!(job["state"], "UploadComplete");
    assert_eq!(job["object"], "Contact");
    assert_eq!(job["apiVersion"], 59.0);
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750") && id.len() == 18);
    // Results before completion: 412 JOB_NOT_COMPLETE.
    let r = org.get(&format!("jobs/query/{id}/results")).await;
    assert_eq!(r.status(), 412);
    error_code(&r.json().await.unwrap(), "JOB_NOT_COMPLETE");
    let info = poll_to_complete(&org, "query", &id).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["jobType"], "V2Query");
    assert_eq!(info["numberRecordsProcessed"], 120);
    for k in ["retries", "totalProcessingTime", "isPkChunkingSupported"] {
        assert!(info.get(k).is_some(), "{k}");
    }
    // Pages of 50 with locators until the literal "null".
    let mut locator = String::new();
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let q = if locator.is_empty() {
            "maxRecords=50".to_string()
        } else {
            format!("maxRecords=50&locator={locator}")
        };
        let r = org.get(&format!("jobs/query/{id}/results?{q}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/csv; charset=UTF-8");
        assert!(
            r.headers()["sforce-limit-info"]
                .to_str()
                .unwrap()
                .starts_with("api-usage=")
        );
        let n: usize = r.headers()["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        locator = r.headers()["sforce-locator"].to_str().unwrap().to_string();
        let body = r.text().await.unwrap();
        let mut rdr = csv::Reader::from_reader(body.as_bytes());
        assert_eq!(
            rdr.headers().unwrap().iter().collect::<Vec<_>>(),
            [
                "Id",
                "Name",
                "Description",
                "Account.Name",
                "CreatedDate",
                "Score__c",
                "IsEmailBounced"
            ]
        );
        assert!(body.starts_with("\"Id\",\"Name\",\"Description\",\"Account.Name\""));
        let page: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
        assert_eq!(page.len(), n);
        rows.extend(page);
        pages += 1;
        if locator == "null" {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(rows.len(), 120);
    for r in &rows {
        assert!(r[4].ends_with(".000Z") && r[4].len() == 24, "{}", &r[4]);
        assert!(r[6] == *"true" || r[6] == *"false");
    }
    assert!(
        rows.iter()
            .any(|r| r[2].contains('"') && r[2].contains('\n')),
        "quotes and newlines survive CSV"
    );
    // gzip when asked.
    let r = org
        .raw
        .get(org.data(&format!("jobs/query/{id}/results")))
        .bearer_auth(&org.token)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(
        csv::Reader::from_reader(text.as_bytes()).records().count(),
        120
    );
    // Bad locator.
    let r = org
        .get(&format!("jobs/query/{id}/results?locator=zzz"))
        .await;
    assert_eq!(r.status(), 400);
    // Delete a finished job; it is gone.
    let r = org
        .http
        .delete(org.data(&format!("jobs/query/{id}")))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, v) = org.get_json(&format!("jobs/query/{id}")).await;
    assert_eq!(s, 404);
    error_code(&v, "NOT_FOUND");
}

#[tokio::test]
async fn query_job_refusals_abort_and_failure() {
    let org = Org::start(5).await;
    for (soql, code) in [
        (
            "SELECT Id, BillingAddress FROM Account",
            "FUNCTIONALITY_NOT_ENABLED",
        ),
        (
            "SELECT Id, Site__c FROM Score__c",
            "FUNCTIONALITY_NOT_ENABLED",
        ),
        (
            "SELECT Id, Body FROM Attachment",
            "FUNCTIONALITY_NOT_ENABLED",
        ),
        ("SELECT Id FROM AccountFeed", "INVALIDENTITY"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        ("SELECT Id, Nope FROM Account", "INVALID_FIELD"),
        // GROUP BY is SOQL, but not for Bulk API 2.0.
        (
            "SELECT Name FROM Account GROUP BY Name",
            "FUNCTIONALITY_NOT_ENABLED",
        ),
    ] {
        let (s, v) = create_query(&org, soql).await;
        assert_eq!(s, 400, "{soql}: {v}");
        error_code(&v, code);
    }
    assert!(
        create_query(&org, "SELECT Id, BillingAddress FROM Account")
            .await
            .1[0]["message"]
            .as_str()
            .unwrap()
            .contains("Selecting compound data not supported in Bulk Query")
    );
    // Abort.
    let (_, job) = create_query(&org, "SELECT Id FROM Account").await;
    let id = job["id"].as_str().unwrap();
    let r = org
        .send_json(
            Method::PATCH,
            &format!("jobs/query/{id}"),
            &json!({"state": "Aborted"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "Aborted");
    assert_eq!(
        org.get(&format!("jobs/query/{id}/results")).await.status(),
        412
    );
    // Injected failure of the next job.
    org.control("fail_bulk_job", &json!({"count": 1})).await;
    let (_, job) = create_query(&org, "SELECT Id FROM Account").await;
    let info = poll_to_complete(&org, "query", job["id"].as_str().unwrap()).await;
    assert_eq!(info["state"], "Failed");
    assert!(info["errorMessage"].is_string());
    // The following one is fine; queryAll includes deleted rows.
    org.control("delete", &json!({"object": "Account", "count": 2}))
        .await;
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "queryAll", "query": "SELECT Id, IsDeleted FROM Account"}),
        )
        .await;
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    assert_eq!(
        poll_to_complete(&org, "query", id).await["state"],
        "JobComplete"
    );
    let csv = org
        .get(&format!("jobs/query/{id}/results"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 6);
    assert_eq!(csv.matches("\"true\"").count(), 2);
}

#[tokio::test]
async fn ingest_insert_with_per_row_results() {
    let org = Org::start(3).await;
    let r = org
        .send_json(Method::POST, "jobs/ingest", &json!({"object": "Lead", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"}))
        .await;
    assert_eq!(r.status(), 200);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["state"], "Open");
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(
        job["contentUrl"],
        format!("services/data/v59.0/jobs/ingest/{id}/batches")
    );
    let csv = "LastName,Company,Score__c,Score_Reason__c,External_Id__c\n\
               Alpha,\"Acme, Inc.\",12.5,\"said \"\"hi\"\"\nthen left\",X-1\n\
               Beta,Beta Co,not-a-number,,X-2\n\
               Gamma,Gamma Co,#N/A,#N/A,X-3\n\
               Delta,Delta Co,1,ok,XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n";
    let r = org
        .http
        .put(org.data(&format!("jobs/ingest/{id}/batches")))
        .bearer_auth(&org.token)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = org
        .get(&format!("jobs/ingest/{id}/successfulResults"))
        .await;
    assert_eq!(r.status(), 412);
    let r = org
        .send_json(
            Method::PATCH,
            &format!("jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "UploadComplete");
    let info = poll_to_complete(&org, "ingest", &id).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["jobType"], "V2Ingest");
    assert_eq!(info["numberRecordsProcessed"], 4);
    assert_eq!(info["numberRecordsFailed"], 2);
    let ok = org
        .get(&format!("jobs/ingest/{id}/successfulResults"))
        .await
        .text()
        .await
        .unwrap();
    let mut rdr = csv::Reader::from_reader(ok.as_bytes());
    assert_eq!(
        rdr.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "sf__Id",
            "sf__Created",
            "LastName",
            "Company",
            "Score__c",
            "Score_Reason__c",
            "External_Id__c"
        ]
    );
    let oks: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(oks.len(), 2);
    assert_eq!(&oks[0][1], "true");
    assert_eq!(&oks[0][3], "Acme, Inc.");
    assert_eq!(&oks[0][5], "said \"hi\"\nthen left");
    let failed = org
        .get(&format!("jobs/ingest/{id}/failedResults"))
        .await
        .text()
        .await
        .unwrap();
    let mut rdr = csv::Reader::from_reader(failed.as_bytes());
    assert_eq!(
        rdr.headers().unwrap().iter().take(2).collect::<Vec<_>>(),
        ["sf__Id", "sf__Error"]
    );
    let errs: Vec<String> = rdr.records().map(|r| r.unwrap()[1].to_string()).collect();
    assert!(
        errs.iter()
            .any(|e| e.starts_with("INVALID_TYPE_ON_FIELD_IN_RECORD:")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("STRING_TOO_LONG:")),
        "{errs:?}"
    );
    // #N/A nulls the field.
    let (_, q) = org
        .query("SELECT Score__c, Score_Reason__c FROM Lead WHERE External_Id__c = 'X-3'")
        .await;
    assert_eq!(q["records"][0]["Score__c"], Value::Null);
    assert_eq!(q["records"][0]["Score_Reason__c"], Value::Null);
    let unprocessed = org
        .get(&format!("jobs/ingest/{id}/unprocessedrecords"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(unprocessed.lines().count(), 1);
}

#[tokio::test]
async fn ingest_upsert_update_delete_and_job_errors() {
    let org = Org::start(3).await;
    async fn run(org: &Org, body: Value, csv: &str) -> (Value, String, String) {
        let job: Value = org
            .send_json(Method::POST, "jobs/ingest", &body)
            .await
            .json()
            .await
            .unwrap();
        let id = job["id"].as_str().unwrap().to_string();
        org.http
            .put(org.data(&format!("jobs/ingest/{id}/batches")))
            .bearer_auth(&org.token)
            .body(csv.to_string())
            .send()
            .await
            .unwrap();
        org.send_json(
            Method::PATCH,
            &format!("jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
        let info = poll_to_complete(org, "ingest", &id).await;
        let ok = org
            .get(&format!("jobs/ingest/{id}/successfulResults"))
            .await
            .text()
            .await
            .unwrap();
        let bad = org
            .get(&format!("jobs/ingest/{id}/failedResults"))
            .await
            .text()
            .await
            .unwrap();
        (info, ok, bad)
    }
    let up = json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "External_Id__c"});
    let (info, ok, _) = run(
        &org,
        up.clone(),
        "External_Id__c,LastName,Score__c\nU-1,Up,1.5\nU-2,Up2,2\n",
    )
    .await;
    assert_eq!(info["externalIdFieldName"], "External_Id__c");
    assert_eq!(ok.matches(",\"true\",").count(), 2, "{ok}");
    // One external id given to two records of a chunk of 200: both refused, none saved.
    let (info, ok, bad) = run(
        &org,
        up.clone(),
        "External_Id__c,LastName\nU-9,Twice\nU-3,Once\nU-9,Again\n",
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 2, "{bad}");
    assert_eq!(ok.lines().count(), 2, "{ok}");
    assert_eq!(
        bad.lines().skip(1).collect::<Vec<_>>(),
        [
            "\"\",\"DUPLICATE_VALUE:Duplicate external id specified: U-9:External_Id__c --\",\"U-9\",\"Twice\"",
            "\"\",\"DUPLICATE_VALUE:Duplicate external id specified: U-9:External_Id__c --\",\"U-9\",\"Again\"",
        ]
    );
    let (_, ok, _) = run(&org, up, "External_Id__c,Score__c\nU-1,7\n").await;
    assert_eq!(ok.matches(",\"false\",").count(), 1, "{ok}");
    let id = ok
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim_matches('"')
        .to_string();
    let (_, q) = org
        .query(&format!(
            "SELECT Score__c, LastName FROM Contact WHERE Id = '{id}'"
        ))
        .await;
    assert_eq!(q["records"][0]["Score__c"], 7.0);
    assert_eq!(
        q["records"][0]["LastName"], "Up",
        "empty/missing cells leave fields unchanged"
    );
    let (info, ok, _) = run(
        &org,
        json!({"object": "Contact", "operation": "delete"}),
        &format!("Id\n{id}\n"),
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 0, "{ok}");
    let (_, q) = org
        .query(&format!("SELECT Id FROM Contact WHERE Id = '{id}'"))
        .await;
    assert_eq!(q["totalSize"], 0);
    let (info, _, bad) = run(
        &org,
        json!({"object": "Contact", "operation": "update"}),
        &format!("Id,LastName\n{id},Again\n"),
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 1, "{bad}");
    assert!(bad.contains("ENTITY_IS_DELETED"));
    // A header naming no field fails the whole job.
    let (info, _, _) = run(
        &org,
        json!({"object": "Contact", "operation": "insert"}),
        "LastName,Bogus__c\nA,B\n",
    )
    .await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        "InvalidBatch : Field name not found : Bogus__c"
    );
    // Bad job definitions.
    for body in [
        json!({"object": "Contact", "operation": "merge"}),
        json!({"object": "Nope", "operation": "insert"}),
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "LastName"}),
        json!({"object": "Contact", "operation": "insert", "columnDelimiter": "SPACE"}),
    ] {
        let r = org.send_json(Method::POST, "jobs/ingest", &body).await;
        assert_eq!(r.status(), 400, "{body}");
        error_code(&r.json().await.unwrap(), "INVALIDJOB");
    }
    // Injected failure: everything stays unprocessed.
    org.control("fail_bulk_job", &json!({"count": 1})).await;
    let job: Value = org
        .send_json(
            Method::POST,
            "jobs/ingest",
            &json!({"object": "Lead", "operation": "insert"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let jid = job["id"].as_str().unwrap();
    org.http
        .put(org.data(&format!("jobs/ingest/{jid}/batches")))
        .bearer_auth(&org.token)
        .body("LastName,Company\nA,B\n")
        .send()
        .await
        .unwrap();
    org.send_json(
        Method::PATCH,
        &format!("jobs/ingest/{jid}"),
        &json!({"state": "UploadComplete"}),
    )
    .await;
    let info = poll_to_complete(&org, "ingest", jid).await;
    assert_eq!(info["state"], "Failed");
    let un = org
        .get(&format!("jobs/ingest/{jid}/unprocessedrecords"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(un, "\"LastName\",\"Company\"\n\"A\",\"B\"\n");
}

#[tokio::test]
async fn delimiters_and_line_endings() {
    let org = Org::start(4).await;
    let r = org
        .send_json(
            Method::POST,
            "jobs/query",
            &json!({"operation": "query", "query": "SELECT Id, Name, Description FROM Account",
                    "columnDelimiter": "PIPE", "lineEnding": "CRLF"}),
        )
        .await;
    let job: Value = r.json().await.unwrap();
    assert_eq!(
        (job["columnDelimiter"].clone(), job["lineEnding"].clone()),
        (json!("PIPE"), json!("CRLF"))
    );
    let id = job["id"].as_str().unwrap();
    poll_to_complete(&org, "query", id).await;
    let body = org
        .get(&format!("jobs/query/{id}/results"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        body.starts_with("\"Id\"|\"Name\"|\"Description\"\r\n"),
        "{body}"
    );
    let rows: Vec<csv::StringRecord> = csv::ReaderBuilder::new()
        .delimiter(b'|')
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    // Ingest with a semicolon delimiter.
    let job: Value = org
        .send_json(
            Method::POST,
            "jobs/ingest",
            &json!({"object": "Account", "operation": "insert", "columnDelimiter": "SEMICOLON"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let jid = job["id"].as_str().unwrap();
    org.http
        .put(org.data(&format!("jobs/ingest/{jid}/batches")))
        .bearer_auth(&org.token)
        .body("Name;Description\n\"Semi; Colon\";\"a, b\"\n")
        .send()
        .await
        .unwrap();
    org.send_json(
        Method::PATCH,
        &format!("jobs/ingest/{jid}"),
        &json!({"state": "UploadComplete"}),
    )
    .await;
    assert_eq!(
        poll_to_complete(&org, "ingest", jid).await["numberRecordsFailed"],
        0
    );
    let ok = org
        .get(&format!("jobs/ingest/{jid}/successfulResults"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        ok.starts_with("\"sf__Id\";\"sf__Created\";\"Name\";\"Description\"\n"),
        "{ok}"
    );
    let (_, q) = org
        .query("SELECT Description FROM Account WHERE Name = 'Semi; Colon'")
        .await;
    assert_eq!(q["records"][0]["Description"], "a, b");
}
