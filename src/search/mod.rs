//! Full-text search over the catalog (tantivy), beside the store and
//! knowing nothing above it: `index` (the schema, the entries and hits,
//! writing them with a checkpoint, the short-prefix suggestions kept per
//! searcher generation), `query` (search with filters and sorts;
//! suggestions), `facets` (the counts over every match), `text` (the folding analyzer shared by indexing
//! and queries). `service::products::search` keeps it fed from the catalog feed.

mod facets;
mod index;
mod query;
pub mod text;

pub use facets::{AttributeFacet, Bucket, Facets, RangeBucket, FACET_BUCKETS, PRICE_BUCKETS};
pub use index::{Checkpoint, Entry, Hit, IndexError, Kind, SearchIndex, SCHEMA_VERSION};
pub use query::{Params, Results, Sort, MAX_QUERY_TERMS};
