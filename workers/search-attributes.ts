import { Connection, type ConnectionOptions } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { PIFT_STEP } from '../common/constants';

/**
 * Registers the PiftStep search attribute when the namespace lacks it: upserting an unknown attribute would fail
 * every workflow task. The dev server started by our scripts already has it; other clusters get it here.
 */
export async function ensureSearchAttributes(connectionOptions: ConnectionOptions, namespace: string): Promise<void> {
  const connection = await Connection.connect(connectionOptions);
  try {
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    if (customAttributes && PIFT_STEP.name in customAttributes) return;
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: { [PIFT_STEP.name]: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD },
    });
  } finally {
    await connection.close();
  }
}
