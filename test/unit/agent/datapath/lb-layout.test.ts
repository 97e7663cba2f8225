import t, { type Test } from 'tap';
import {
  addrBytes, addrText, affKeyCodec, affValueCodec, lb4BackendCodec, lb4KeyCodec, lb4RevNatCodec, lb4RskCodec,
  lb4RskKeyCodec, lb6BackendCodec, lb6KeyCodec, lb6RevNatCodec, lb6RskCodec, lb6RskKeyCodec, pickSockLbObject,
  svcValueCodec, toHex, u32Codec, LB_STRUCTS, type Codec,
} from '../../../../agent/datapath/lb-layout.ts';
import { endianness } from 'node:os';

function roundTrip<T>(t: Test, name: string, codec: Codec<T>, v: T): Uint8Array {
  const b = codec.encode(v);
  t.equal(b.length, codec.size, `${name}: encoded size`);
  t.same(codec.decode(b), v, `${name}: round trip`);
  return b;
}

t.test('codecs round-trip every struct', async (t) => {
  roundTrip(t, 'u32', u32Codec, 0xdeadbeef);
  roundTrip(t, 'lb4 key', lb4KeyCodec, { address: '10.96.0.10', port: 80, proto: 6 });
  roundTrip(t, 'lb6 key', lb6KeyCodec, { address: 'fd00:10:96::a', port: 53, proto: 17 });
  roundTrip(t, 'svc value', svcValueCodec, { slotBase: 262143, count: 65535, flags: 1, revNatId: 70000, affinityTimeout: 10800 });
  roundTrip(t, 'lb4 backend', lb4BackendCodec, { address: '10.42.0.5', port: 8080, proto: 17, flags: 1 });
  roundTrip(t, 'lb6 backend', lb6BackendCodec, { address: 'fd00:42::5', port: 8443, proto: 6, flags: 0 });
  roundTrip(t, 'lb4 rnat', lb4RevNatCodec, { address: '10.96.0.1', port: 443 });
  roundTrip(t, 'lb6 rnat', lb6RevNatCodec, { address: '2001:db8::1', port: 65535 });
  roundTrip(t, 'lb4 rsk key', lb4RskKeyCodec, { cookie: 0xffffffffffffn + 5n, address: '10.42.1.2', port: 9 });
  roundTrip(t, 'lb4 rsk', lb4RskCodec, { address: '10.96.0.10', port: 80, revNatId: 12 });
  roundTrip(t, 'lb6 rsk key', lb6RskKeyCodec, { cookie: 1n, address: '::1', port: 1 });
  roundTrip(t, 'lb6 rsk', lb6RskCodec, { address: 'fd00::10', port: 80, revNatId: 3 });
  roundTrip(t, 'aff key', affKeyCodec, { client: 4096n, revNatId: 9 });
  roundTrip(t, 'aff value', affValueCodec, { lastUsedNs: 123456789012345n, backendId: 2, slot: 4 });
});

t.test('byte order: addresses and ports network order, the rest host order, padding zero', async (t) => {
  const k = lb4KeyCodec.encode({ address: '10.96.0.10', port: 0x1234, proto: 17 });
  const le = endianness() === 'LE';
  t.equal(toHex(k), '0a60000a' + '1234' + '11' + '00');
  const v = svcValueCodec.encode({ slotBase: 1, count: 2, flags: 1, revNatId: 3, affinityTimeout: 4 });
  t.equal(toHex(v), le ? '01000000' + '0200' + '01' + '00' + '03000000' + '04000000' : '00000001' + '0002' + '01' + '00' + '00000003' + '00000004');
  t.equal(toHex(lb6KeyCodec.encode({ address: 'fd00::1', port: 80, proto: 6 })).slice(0, 36), 'fd000000000000000000000000000001' + '0050');
});

t.test('addresses', async (t) => {
  t.same(Array.from(addrBytes('10.0.0.1', 4)), [10, 0, 0, 1]);
  t.throws(() => addrBytes('fd00::1', 4), /IPv4/);
  t.throws(() => addrBytes('10.0.0.1', 6), /IPv6/);
  t.throws(() => addrBytes('nope', 4));
  t.equal(addrText(addrBytes('FD00:0:0::0001', 6)), 'fd00::1', 'canonical on decode');
  const mapped = new Uint8Array(16);
  mapped[10] = 0xff; mapped[11] = 0xff; mapped[12] = 10; mapped[15] = 7;
  t.equal(addrText(mapped), '::ffff:10.0.0.7');
  t.throws(() => lb4KeyCodec.decode(new Uint8Array(7)), /expected 8 bytes/);
});

t.test('struct layouts have explicit padding (no holes) and sizes are multiples of their alignment', async (t) => {
  for (const s of LB_STRUCTS) {
    const fields = Object.values(s.fields).sort((a, b) => a.offset - b.offset);
    let end = 0;
    for (const f of fields) {
      t.equal(f.offset, end, `${s.name}: no hole before offset ${f.offset}`);
      end = f.offset + f.size;
    }
    t.equal(end, s.size, `${s.name}: no tail padding`);
  }
});

t.test('object variant by kernel features', async (t) => {
  t.equal(pickSockLbObject({ setRetval: true, netnsCookie: true }).file, 'sock_lb.bpf.o');
  t.equal(pickSockLbObject({ setRetval: false, netnsCookie: true }).file, 'sock_lb-noretval.bpf.o');
  t.equal(pickSockLbObject({ setRetval: false, netnsCookie: false }).file, 'sock_lb-compat.bpf.o');
  t.equal(pickSockLbObject({ setRetval: true, netnsCookie: false }).file, 'sock_lb-compat.bpf.o');
});
