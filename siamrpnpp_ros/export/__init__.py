"""Model export (ONNX for ONNX Runtime and TensorRT): the ``siamrpnpp-export`` command line in
:mod:`siamrpnpp_ros.export.onnx`, over the graphs of :mod:`siamrpnpp_ros.models.onnx_graphs`.
"""

from siamrpnpp_ros.models.onnx_graphs import export_search_onnx, export_template_onnx

__all__ = ["export_search_onnx", "export_template_onnx"]
