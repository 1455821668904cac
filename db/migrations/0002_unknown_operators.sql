-- Operator names T-Bank listed that the `operators` directory did not know, per department
-- and call day, with how many of that day's calls they made. Every run (not a dry run)
-- replaces its day's rows; `callq operators unknown` reads them.

CREATE TABLE IF NOT EXISTS unknown_operators (
    department_id integer NOT NULL,
    call_date     date NOT NULL,
    operator_name text NOT NULL,
    calls         integer NOT NULL,
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (department_id, call_date, operator_name)
);
