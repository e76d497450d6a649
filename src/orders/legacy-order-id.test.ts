import { describe, expect, it } from 'vitest';
import { legacyOrderKey, parseLegacyOrderId } from './legacy-order-id.js';

describe('parseLegacyOrderId', () => {
  it('reads the buyer and the channel, keeping ids beyond 2^53 exact', () => {
    expect(parseLegacyOrderId('PGP-123456789|-1001234567890')).toEqual({ buyerTelegramId: '123456789', openChannelId: '-1001234567890' });
    expect(parseLegacyOrderId('PGP-9007199254740993|-9007199254740995')).toEqual({
      buyerTelegramId: '9007199254740993',
      openChannelId: '-9007199254740995',
    });
  });

  it.each(['PGP-', 'PGP-123', 'PGP-123|', 'PGP-abc|-100', 'PGP-1.5|-100', 'PGP-123|-100|x', 'pgp-1|-100', 'ord_1', 'PGP-1|-99999999999999999999', 'PGP-0|-100'])(
    'refuses %s',
    (id) => {
      expect(parseLegacyOrderId(id)).toBeNull();
    },
  );

  it('keys a legacy order by its root payment, so a child payment lands on its parent\'s order', () => {
    expect(legacyOrderKey('PGP-1|-100', '5077125051')).toBe('PGP-1|-100#5077125051');
  });
});
