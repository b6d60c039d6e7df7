/** Store settings in one place; everything else reads them from here. */
export const storeDefaults = {
  /** Region when neither PIFT_S3_REGION nor AWS_REGION is set (MinIO and SeaweedFS accept any). */
  s3Region: 'us-east-1',
  /** Size of one multipart part; S3 requires at least 5 MiB for all parts but the last. */
  multipartPartSize: 8 * 1024 * 1024,
  /** Parts uploaded at once per file: enough to fill a link, few enough for a 2-core worker. */
  multipartQueueSize: 4,
  /** Largest object one CopyObject request may copy (S3's limit); bigger ones are copied in parts. */
  singleCopyMaxBytes: 5 * 1024 * 1024 * 1024,
  /** Size of one part of a multipart copy. */
  copyPartSize: 512 * 1024 * 1024,
  /** Files of one folder uploaded or downloaded at once (each with its own parts in flight). */
  filesInFlight: 4,
  /** Keys per ListObjectsV2 page, and so per DeleteObjects request; S3 caps both at 1000. */
  listPageSize: 1000,
} as const;
