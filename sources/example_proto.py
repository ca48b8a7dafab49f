"""tf.train.Example, the record format of RLDS shards, as protobuf classes built here from its schema.

The same wire format as TensorFlow's example.proto and feature.proto (package tensorflow, the
same field numbers), built with protobuf alone: reading shards needs no TensorFlow import.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(
        name="spatial_action_pipeline/example.proto", package="tensorflow", syntax="proto3"
    )

    def message(name, *fields):
        m = f.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            m.field.add(name=fname, number=number, type=ftype, label=label, type_name=type_name or None)
        return m

    rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    message("BytesList", ("value", 1, _F.TYPE_BYTES, rep, ""))
    fl = message("FloatList", ("value", 1, _F.TYPE_FLOAT, rep, ""))
    il = message("Int64List", ("value", 1, _F.TYPE_INT64, rep, ""))
    fl.field[0].options.packed = il.field[0].options.packed = True
    feature = message(
        "Feature",
        ("bytes_list", 1, _F.TYPE_MESSAGE, opt, ".tensorflow.BytesList"),
        ("float_list", 2, _F.TYPE_MESSAGE, opt, ".tensorflow.FloatList"),
        ("int64_list", 3, _F.TYPE_MESSAGE, opt, ".tensorflow.Int64List"),
    )
    feature.oneof_decl.add(name="kind")
    for fd in feature.field:
        fd.oneof_index = 0
    features = message("Features", ("feature", 1, _F.TYPE_MESSAGE, rep, ".tensorflow.Features.FeatureEntry"))
    entry = features.nested_type.add(name="FeatureEntry")
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=_F.TYPE_MESSAGE, label=opt, type_name=".tensorflow.Feature")
    entry.options.map_entry = True
    message("Example", ("features", 1, _F.TYPE_MESSAGE, opt, ".tensorflow.Features"))
    return f


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
Example = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("tensorflow.Example"))
