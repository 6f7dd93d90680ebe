/**
 * The failure converter used when payload encryption is on (DataConverter.failureConverterPath):
 * it moves a failure's message and stack trace into an encoded payload, so the payload codec
 * encrypts them too. The history then shows "Encoded failure" instead of, say, a provider's error text.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
