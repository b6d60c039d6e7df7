export * from './object-store';
export { LocalStore } from './local-store';
export { S3Store, type S3StoreOptions } from './s3-store';
export { s3SettingsFromEnv, s3ClientFor, type S3Settings } from './s3-client';
export { openStore, openObject, parseObjectUri, type OpenOptions } from './open-store';
export { RUN_STORE_SETTING } from './errors';
export { outageToleranceMs } from './outage';
export { validateKey } from './keys';
export { storeDefaults } from './defaults';
