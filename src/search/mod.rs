//! Full-text search over the catalog (tantivy), beside the store and
//! knowing nothing above it: `index` (the schema, the entries and hits,
//! writing them with a checkpoint, the short-prefix suggestions kept per
//! searcher generation), `query` (search with filters, sorts and
//! facets; suggestions), `text` (the folding analyzer shared by indexing
//! and queries). `service::search` keeps it fed from the catalog feed.

mod index;
mod query;
pub mod text;

pub use index::{Checkpoint, Entry, Hit, IndexError, Kind, SearchIndex, SCHEMA_VERSION};
pub use query::{
    AttributeFacet, Bucket, Facets, Params, RangeBucket, Results, Sort, MAX_QUERY_TERMS,
    PRICE_BUCKETS,
};
