//! The integration tests, one binary (one link) for all of them. Each module is one area;
//! `common` is the end-to-end harness (a database per test, the fakes, the env file).

mod bench_smoke;
mod bi_views;
mod binary;
mod calibrate;
mod checklist_sheets;
mod common;
mod compare;
mod demo;
mod edges;
mod env_example;
mod export;
mod faults;
mod gateway;
mod litellm;
mod llm_client;
mod old_database;
mod operators;
mod privacy;
mod purge;
mod report;
mod report_scale;
mod review;
mod run;
mod save;
mod schema_sql;
mod store_tls;
