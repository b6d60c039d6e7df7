export * from './object-store';
export { LocalStore } from './local-store';
export { S3Store } from './s3-store';
export { s3SettingsFromEnv, s3ClientFor } from './s3-client';
export { openStore, openObject, parseObjectUri } from './open-store';
export { allowedLocation, fileRootsFromEnv, FILE_ROOTS_SETTING, localPathOf } from './file-roots';
export { storeDefaults } from './defaults';
