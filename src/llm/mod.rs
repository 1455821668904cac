//! The LLM gateway: prompt rendering, the response schema, analysis parsing, the client.
