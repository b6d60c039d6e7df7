export * from './object-store';
export { LocalStore } from './local-store';
export { S3Store, type S3StoreOptions } from './s3-store';
export { s3SettingsFromEnv, s3ClientFor, type S3Settings } from './s3-client';
export { openStore, openObject, parseObjectUri } from './open-store';
export { allowedLocation, checkRunLocations, fileRootsFromEnv, FILE_ROOTS_SETTING, localPathOf } from './file-roots';
export { validateKey } from './keys';
export { storeDefaults } from './defaults';
