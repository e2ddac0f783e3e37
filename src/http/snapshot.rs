//! `/v1/snapshot`: GET saves the store as Consul's snapshot archive (a gzipped tar, see
//! `crate::snapshot_archive`), PUT restores one.
//!
//! Both go through the typed request path, so any agent serves them: a client agent
//! forwards to a server, a follower to the leader. GET is `Read::Snapshot`, served like
//! Consul's: by the leader after a consistent check unless `?stale` (then by whichever
//! server is asked), with the query-meta headers. PUT verifies the archive here (every
//! checksum, raft's snapshot version, cairn's image header, and that the image decodes),
//! then sends `WriteRequest::Restore`, which every server applies from the Raft log
//! (see `protocol::store` restore docs for the index rules). Answers an empty 200.
//!
//! A restore is ONE Raft entry, so its image must fit a replicated command
//! (`codec::MAX_COMMAND_BYTES`, 16 MiB): a larger one is refused here with 413 and a
//! text that says so, before anything is proposed. (The forwarding limits follow from
//! it: a request frame holds a command plus 64 KiB; a saved snapshot travels back from
//! another server in one answer frame of at most 64 MiB.)

use super::error::ApiError;
use super::query::check_dc;
use super::render::MetaHeaders;
use super::{ApiRequest, BodyReader};
use crate::context::AgentContext;
use crate::snapshot_archive::{read_archive, write_archive, ArchiveError, STATE_HEADER_BYTES};
use actix_web::http::Method;
use actix_web::HttpResponse;
use protocol::api::{Consistency, QueryOptions, Read, ReadData, RequestError, WriteRequest};
use protocol::codec;

/// Room a restore command needs around its image (enum tags and the length prefix).
const RESTORE_COMMAND_OVERHEAD_BYTES: usize = 64;
/// Largest store image a restore may carry: one replicated command.
pub const MAX_RESTORE_IMAGE_BYTES: usize =
    codec::MAX_COMMAND_BYTES - RESTORE_COMMAND_OVERHEAD_BYTES;
/// Largest archive body accepted: the largest image (which gzip may not shrink) plus the
/// tar's headers and small files.
pub const MAX_SNAPSHOT_BODY_BYTES: usize = MAX_RESTORE_IMAGE_BYTES + 1024 * 1024;

/// What the archive's gzip stream says it is (Go's content sniffing gives Consul this).
pub const SNAPSHOT_CONTENT_TYPE: &str = "application/x-gzip";

fn body_too_large(len: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "Snapshot archive of {len} bytes is too large to restore: cairn restores at most \
         {MAX_SNAPSHOT_BODY_BYTES} bytes of archive ({MAX_RESTORE_IMAGE_BYTES} bytes of \
         state, the most one replicated Raft entry carries)"
    ))
}

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    check_dc(&req.query, &ctx.config.datacenter)?;
    match req.method {
        Method::GET => save(ctx, req).await,
        Method::PUT => restore(ctx, body).await,
        _ => Err(ApiError::internal(
            "unreachable: method filtered by the router",
        )),
    }
}

async fn save(ctx: &AgentContext, req: &ApiRequest) -> Result<HttpResponse, ApiError> {
    // Consul: `?stale` lets any server answer; otherwise the leader, consistently.
    let consistency = match req.query.has("stale") {
        true => Consistency::Stale,
        false => Consistency::Consistent,
    };
    let options = QueryOptions {
        consistency,
        ..QueryOptions::default()
    };
    let read = ctx.api.read(options, Read::Snapshot).await?;
    let ReadData::Snapshot(image) = read.data else {
        return Err(RequestError::unexpected_data().into());
    };
    let image = image.map_err(|e| ApiError::internal(format!("snapshot failed: {e}")))?;
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    // Compressing a big store takes a while: not on the HTTP worker.
    let archive = actix_web::web::block(move || {
        write_archive(image.index, image.term, &image.image, unix_ms)
    })
    .await
    .map_err(|e| ApiError::internal(format!("snapshot archive failed: {e}")))?
    .map_err(|e| ApiError::internal(format!("snapshot archive failed: {e}")))?;
    let mut resp = HttpResponse::Ok()
        .content_type(SNAPSHOT_CONTENT_TYPE)
        .body(archive);
    read.meta.apply(&mut resp);
    Ok(resp)
}

async fn restore(ctx: &AgentContext, body: &mut BodyReader<'_>) -> Result<HttpResponse, ApiError> {
    let archive = body.read(MAX_SNAPSHOT_BODY_BYTES, body_too_large).await?;
    let image = actix_web::web::block(move || verified_image(&archive))
        .await
        .map_err(|e| ApiError::internal(format!("snapshot restore failed: {e}")))??;
    ctx.api.write(WriteRequest::Restore { image }).await?;
    Ok(HttpResponse::Ok().finish())
}

/// The archive's store image, once everything about it checks out.
pub fn verified_image(archive: &[u8]) -> Result<Vec<u8>, ApiError> {
    let limit = (MAX_RESTORE_IMAGE_BYTES + STATE_HEADER_BYTES) as u64;
    let archive = read_archive(archive, limit).map_err(|e| match e {
        ArchiveError::TooLarge { name, size, .. } if name == "state.bin" => {
            ApiError::TooLarge(format!(
                "Snapshot state of {size} bytes is too large to restore: cairn replicates a \
             restore as one Raft entry, which carries at most {MAX_RESTORE_IMAGE_BYTES} bytes \
             of state"
            ))
        }
        other => ApiError::internal(other.to_string()),
    })?;
    protocol::store::image::store_from_image(&archive.image, codec::MAX_DECODE_BYTES)
        .map_err(|e| ApiError::internal(format!("snapshot state does not decode: {e}")))?;
    Ok(archive.image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot_archive::write_archive;
    use protocol::store::image::encode_image;
    use protocol::store::{Command, KvOp, Store};

    #[test]
    fn a_good_archive_gives_its_image_and_bad_ones_say_why() {
        let mut store = Store::new();
        store.apply(
            1,
            &Command::Kv(KvOp::Set {
                key: "k".into(),
                value: b"v".to_vec(),
                flags: 0,
            }),
        );
        let image = encode_image(&store).unwrap();
        let archive = write_archive(1, 1, &image, 0).unwrap();
        assert_eq!(verified_image(&archive).unwrap(), image);

        let not_an_image = write_archive(1, 1, b"garbage", 0).unwrap();
        let err = verified_image(&not_an_image).unwrap_err();
        assert_eq!(err.status().as_u16(), 500);
        assert!(
            err.text().starts_with("snapshot state does not decode: "),
            "{err}"
        );

        let err = verified_image(b"junk").unwrap_err();
        assert!(err.text().starts_with("failed reading snapshot: "), "{err}");
    }

    #[test]
    fn an_image_over_one_raft_entry_is_refused_before_anything_is_proposed() {
        let big = vec![0u8; MAX_RESTORE_IMAGE_BYTES + 1];
        let archive = write_archive(1, 1, &big, 0).unwrap();
        let err = verified_image(&archive).unwrap_err();
        assert_eq!(err.status().as_u16(), 413);
        assert!(
            err.text()
                .contains("too large to restore: cairn replicates a restore as one Raft entry"),
            "{err}"
        );
        assert!(body_too_large(1).text().contains("at most"));
    }
}
