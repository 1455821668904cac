//! The integration tests, one binary (one link) for all of them. Each module is one area;
//! `common` is the end-to-end harness (a database per test, the fakes, the env file).

mod bench_smoke;
mod bi_views;
mod binary;
mod checklist_sheets;
mod common;
mod demo;
mod env_example;
mod export;
mod llm_client;
mod old_database;
mod operators;
mod report;
mod report_scale;
mod run;
mod schema_sql;
mod store_tls;
