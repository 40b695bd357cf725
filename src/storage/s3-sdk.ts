/**
 * The parts of the AWS SDK that s3.ts uses, and nothing else. The single
 * executable embeds this module, bundled from the SDK's ES modules, as its
 * S3 SDK (scripts/build.ts): esbuild then drops the client's other commands
 * and their schemas, which every command that reaches S3 would otherwise
 * load. The credential providers stay: the client's default chain imports
 * each one only when it tries it.
 */
export {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
export type { CompletedPart, ServerSideEncryption, StorageClass } from '@aws-sdk/client-s3';
export { NodeHttpHandler } from '@smithy/node-http-handler';
